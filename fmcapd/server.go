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
	"os/exec"
	"path/filepath"
	"runtime"
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
	env     []string // fmslice's environment
	// lowPrio runs fmslice below capture (lowPriority); empty: as it is.
	lowPrio []string

	mu       sync.Mutex
	active   map[string]int // per client identity
	draining bool           // drain waits for the handlers: no new one starts

	// stopQueries ends when shutdown_grace is over after a stop: the
	// queries still running are then cut (run), their answers flagged
	// incomplete. handlers counts the API handlers under way, audit line
	// included, so that Serve returns only after the last one.
	stopQueries   context.Context
	cancelQueries context.CancelFunc
	handlers      sync.WaitGroup

	outcomes outcomes // of the pcap queries named by their client (outcome.go)

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
	s.stopQueries, s.cancelQueries = context.WithCancel(context.Background())
	s.env = fmsliceEnv(k.stores)
	if s.fmslice, err = findFMSlice(k.FMSlice); err != nil {
		return nil, err
	}
	if s.lowPrio = lowPriority(); s.lowPrio == nil {
		log.Warn("nice or ionice not found: queries run at the priority of capture, and 50 at once can slow the writer")
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

// awsChain are the variables of the AWS chain an s3:// store's fmslice
// reads its credentials, region and endpoint from, with HOME and
// XDG_CACHE_HOME for the shared files and its cache, and the proxy and CA
// bundle settings the SDK's HTTP client follows (as fmupload does).
var awsChain = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
	"AWS_EC2_METADATA_DISABLED", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
	"HOME", "XDG_CACHE_HOME"}

// fmsliceEnv is the environment fmslice runs in: PATH only, and the AWS
// chain when a store is in object storage; never fmcapd's FMCAP_*
// settings, which fmslice would take for its own.
func fmsliceEnv(stores []store) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, st := range stores {
		if st.remote() {
			for _, k := range awsChain {
				if v, ok := os.LookupEnv(k); ok {
					env = append(env, k+"="+v)
				}
			}
			break
		}
	}
	return env
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
	mux.HandleFunc("GET /api/v1/outcome", s.outcomeHandler)
	mux.Handle("GET /", s.webHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", metrics.Handler(s.collect))
	return mux
}

// Serve listens and serves until ctx ends, then drains (drain); ready, if
// not nil, gets the address it listens on.
func (s *Server) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	srv := &http.Server{Handler: s.Handler(), TLSConfig: s.cfg.tls, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	scheme := "http"
	if s.cfg.tls != nil {
		scheme = "https"
	}
	s.log.Info("serving", "url", scheme+"://"+ln.Addr().String(), "stores", len(s.cfg.stores))
	if ready != nil {
		ready(ln.Addr().String())
	}
	served := make(chan error, 1)
	go func() {
		if s.cfg.tls != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		return err // never ErrServerClosed: only drain shuts srv down
	case <-ctx.Done():
	}
	s.drain(srv)
	<-served // ErrServerClosed, at once since Shutdown began
	return nil
}

// drainFinish is how long a query cut at the end of shutdown_grace has to
// send the rest of what it holds and its trailer; a client that does not
// read it in that time is disconnected.
const drainFinish = 10 * time.Second

// drain stops fmcapd: no new connection is accepted, the queries running
// may finish within shutdown_grace, those still running then are cut (each
// answer ends with Fmcap-Complete: no and Fmcap-Error naming
// shutdown_grace, and is audited so), and drain returns once every handler
// has written its audit line.
func (s *Server) drain(srv *http.Server) {
	grace := s.cfg.ShutdownGrace
	s.log.Info("stopping: no new connections; running queries may finish", "running", s.running.Load(), "shutdown_grace", grace)
	gctx, cancel := context.WithTimeout(context.Background(), grace)
	err := srv.Shutdown(gctx) // closes the listener, waits for the handlers
	cancel()
	if err != nil {
		s.log.Warn("shutdown_grace over: cutting the queries still running; their answers end flagged incomplete",
			"running", s.running.Load(), "shutdown_grace", grace)
		s.cancelQueries()
		fctx, cancel := context.WithTimeout(context.Background(), drainFinish)
		err = srv.Shutdown(fctx)
		cancel()
		if err != nil {
			s.log.Warn("clients still not reading their cut answers: disconnected", "after", drainFinish)
			srv.Close()
		}
	}
	// Shutdown does not wait for handlers whose connection it closed (nor
	// does Close): their audit lines are still to be written. A request
	// read just before the listener closed may still reach its handler:
	// it is refused (draining), so that none is added while Wait waits.
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.handlers.Wait()
	s.cancelQueries()
	s.log.Info("stopped")
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
	// What a query left behind would show as (Prometheus's usual names):
	// goroutines and open file descriptors.
	m.Gauge("go_goroutines", "Goroutines of fmcapd.", float64(runtime.NumGoroutine()))
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		m.Gauge("process_open_fds", "File descriptors fmcapd has open.", float64(len(fds)-1)) // less the directory's own
	}
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

// lowPriority is the prefix that runs a query's fmslice at a lower CPU and
// I/O priority than capture: nice 10 (a tenth of a normal process's CPU
// share when they compete) and best-effort I/O at its lowest level. A
// capture node's queries must never starve the writer: 50 concurrent
// slices at the writer's own priority would take 50 shares of two cores
// to its one. The priority is set by nice(1) and ionice(1) before fmslice
// is executed, so every thread of it has it (Linux sets nice per thread;
// setting it from here after the start would miss the threads the Go
// runtime has already made). nil when either is missing.
func lowPriority() []string {
	ionice, err1 := exec.LookPath("ionice")
	nice, err2 := exec.LookPath("nice")
	if err1 != nil || err2 != nil {
		return nil
	}
	return []string{ionice, "-t", "-c", "2", "-n", "7", nice, "-n", "10"} // -t: run fmslice even where the class cannot be set
}
