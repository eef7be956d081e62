package fmcapd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/internal/metrics"
)

// Server is fmcapd: the HTTP(S) handlers over the configured stores.
type Server struct {
	cfg     *checked
	log     *slog.Logger
	audit   *json.Encoder
	auditMu sync.Mutex
	fmslice string

	mu     sync.Mutex
	active map[string]int // per client identity

	queries   sync.Map // "endpoint status" → *atomic.Uint64
	bytesSent atomic.Uint64
	running   atomic.Int64
	refused   sync.Map // reason → *atomic.Uint64
}

// New checks cfg and makes a Server. auditOut is where audit lines go
// when the configuration names no audit_log file.
func New(cfg Config, log *slog.Logger, auditOut io.Writer) (*Server, error) {
	k, err := cfg.check()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: k, log: log, active: map[string]int{}}
	if s.fmslice, err = findFMSlice(k.FMSlice); err != nil {
		return nil, err
	}
	if k.AuditLog != "" {
		f, err := os.OpenFile(k.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fsmode.File)
		if err != nil {
			return nil, fmt.Errorf("audit_log: %w", err)
		}
		auditOut = f
	}
	s.audit = json.NewEncoder(auditOut)
	return s, nil
}

// findFMSlice is the fmslice binary to run: the configured one, else the
// one beside this executable, else fmslice on PATH.
func findFMSlice(p string) (string, error) {
	if p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return "", fmt.Errorf("fmslice %s: not a file", p)
		}
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		if c := filepath.Join(filepath.Dir(self), "fmslice"); fileExists(c) {
			return c, nil
		}
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if c := filepath.Join(d, "fmslice"); d != "" && fileExists(c) {
			return c, nil
		}
	}
	return "", errors.New("no fmslice binary beside fmcapd nor on PATH: set fmslice: in the configuration")
}

func fileExists(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }

// Handler is the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pcap", s.api("pcap"))
	mux.HandleFunc("GET /api/v1/flows", s.api("flows"))
	mux.HandleFunc("GET /api/v1/timeline", s.api("timeline"))
	mux.HandleFunc("GET /api/v1/info", s.api("info"))
	mux.HandleFunc("GET /api/v1/stores", s.storesHandler)
	mux.Handle("GET /", s.webHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", metrics.Handler(s.collect))
	return mux
}

// Serve listens and serves until ctx ends; ready, if not nil, gets the
// address it listens on.
func (s *Server) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{Handler: s.Handler(), TLSConfig: s.cfg.tls, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	scheme := "http"
	if s.cfg.tls != nil {
		scheme = "https"
	}
	s.log.Info("serving", "url", scheme+"://"+ln.Addr().String(), "stores", len(s.cfg.stores))
	if ready != nil {
		ready(ln.Addr().String())
	}
	if s.cfg.tls != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// counter is the named counter of m, made on first use.
func counter(m *sync.Map, key string) *atomic.Uint64 {
	v, _ := m.LoadOrStore(key, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

func (s *Server) collect(m *metrics.Writer) {
	s.queries.Range(func(k, v any) bool {
		var ep, st string
		fmt.Sscan(k.(string), &ep, &st)
		m.Counter("fmcapd_queries_total", "Queries answered, by endpoint and HTTP status.", v.(*atomic.Uint64).Load(), "endpoint", ep, "status", st)
		return true
	})
	m.Counter("fmcapd_bytes_sent_total", "Answer bytes sent.", s.bytesSent.Load())
	m.Gauge("fmcapd_queries_running", "Queries being answered now.", float64(s.running.Load()))
	s.refused.Range(func(k, v any) bool {
		m.Counter("fmcapd_refused_total", "Requests refused before a query ran, by reason.", v.(*atomic.Uint64).Load(), "reason", k.(string))
		return true
	})
}

// acquire takes one of the client's query slots.
func (s *Server) acquire(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[id] >= s.cfg.MaxConcurrent {
		return false
	}
	s.active[id]++
	return true
}

func (s *Server) release(id string) {
	s.mu.Lock()
	s.active[id]--
	if s.active[id] == 0 {
		delete(s.active, id)
	}
	s.mu.Unlock()
}

// auditLine is one audited request.
type auditLine struct {
	Time     string `json:"time"`
	Client   string `json:"client"`
	Remote   string `json:"remote"`
	Endpoint string `json:"endpoint"`
	Store    string `json:"store,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Filter   string `json:"filter,omitempty"`
	Format   string `json:"format,omitempty"`
	Status   int    `json:"status"`
	Bytes    int64  `json:"bytes"`
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	Millis   int64  `json:"ms"`
}

func (s *Server) writeAudit(a *auditLine) {
	s.auditMu.Lock()
	s.audit.Encode(a)
	s.auditMu.Unlock()
}
