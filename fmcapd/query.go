package fmcapd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fmcap/fmcap/internal/timespec"
)

// request is a query as parsed from its URL: fmslice's arguments, and
// what the audit line says of it.
type request struct {
	endpoint string
	json     bool     // flows, timeline, info: --json (output=json, the default) or text
	abort    bool     // pcap, incomplete=abort: an answer found incomplete after its start is aborted, not ended with trailers
	id       string   // pcap, id=: the client's name for the query, whose outcome it may ask (outcome.go)
	args     []string // fmslice's, the filter last
	a        auditLine
}

// badRequest is an error to answer with 400 and its text.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

// parseRequest turns an endpoint's query string into fmslice's arguments.
// now resolves relative times; maxRange bounds the range (0: no bound).
func parseRequest(endpoint string, q url.Values, stores []store, cache string, now time.Time, maxRange time.Duration) (*request, error) {
	bad := func(format string, a ...any) error { return &badRequest{fmt.Sprintf(format, a...)} }
	known := map[string][]string{
		"pcap":     {"from", "to", "filter", "format", "store", "incomplete", "id"},
		"flows":    {"from", "to", "filter", "by", "store", "output"},
		"timeline": {"from", "to", "filter", "step", "store", "output"},
		"info":     {"store", "output"},
	}[endpoint]
	for k, v := range q {
		if !slices.Contains(known, k) {
			return nil, bad("unknown parameter %q (%s takes %s)", k, endpoint, strings.Join(known, ", "))
		}
		if len(v) != 1 {
			return nil, bad("parameter %q given %d times", k, len(v))
		}
	}
	st := stores[0]
	if n := q.Get("store"); n != "" {
		found := false
		for _, s := range stores {
			if s.name == n {
				st, found = s, true
			}
		}
		if !found {
			return nil, bad("store %q: not served here", n)
		}
	}
	r := &request{endpoint: endpoint, json: true}
	switch q.Get("output") {
	case "", "json":
	case "text":
		r.json = false
	default:
		return nil, bad("output %q: json or text", q.Get("output"))
	}
	r.a.Endpoint, r.a.Store = endpoint, st.name
	if endpoint != "pcap" {
		r.args = append(r.args, endpoint)
	}
	r.args = append(r.args, "--store", st.dir)
	// Every endpoint reads an object store through the cache.
	if st.remote() && cache != "" {
		r.args = append(r.args, "--cache", cache)
	}
	if endpoint == "info" {
		return r, r.addJSON()
	}
	from, to := q.Get("from"), q.Get("to")
	lo, hi := int64(-1), int64(-1)
	var err error
	if from != "" {
		if lo, err = timespec.Parse(from, now); err != nil {
			return nil, bad("--from: %v", err)
		}
		r.args = append(r.args, "--from", unixArg(lo))
	}
	if to != "" {
		if hi, err = timespec.Parse(to, now); err != nil {
			return nil, bad("--to: %v", err)
		}
		r.args = append(r.args, "--to", unixArg(hi))
	}
	if from != "" && to != "" && hi <= lo {
		return nil, bad("%v", timespec.EmptyRange(from, to))
	}
	if maxRange > 0 && (from == "" || to == "" || hi-lo > int64(maxRange)) {
		return nil, bad("the range must have both ends and be at most %v long (max_range)", maxRange)
	}
	r.a.From, r.a.To = from, to
	switch endpoint {
	case "pcap":
		f := q.Get("format")
		if f == "" {
			f = "pcap"
		}
		if f != "pcap" && f != "pcapng" {
			return nil, bad("format %q: pcap or pcapng", f)
		}
		r.a.Format = f
		r.args = append(r.args, "-q", "--format", f)
		switch inc := q.Get("incomplete"); inc {
		case "", "trailer":
		case "abort":
			r.abort = true
		default:
			return nil, bad("incomplete %q: trailer or abort", inc)
		}
		if id := q.Get("id"); id != "" {
			if !validID(id) {
				return nil, bad("id %q: 8 to 64 letters, digits, - or _", id)
			}
			r.id = id
		}
	case "flows":
		if by := q.Get("by"); by != "" {
			if by != "bytes" && by != "packets" {
				return nil, bad("by %q: bytes or packets", by)
			}
			r.args = append(r.args, "--by", by)
		}
		r.args = append(r.args, "-q")
		r.addJSON()
	case "timeline":
		step := q.Get("step")
		if step == "" {
			return nil, bad("step: required (a duration, e.g. 1s or 1m)")
		}
		d, err := time.ParseDuration(step)
		if err != nil || d <= 0 {
			return nil, bad("step %q: a positive duration, e.g. 1s or 1m", step)
		}
		r.args = append(r.args, "--step", step)
		r.addJSON()
	}
	if f := q.Get("filter"); f != "" {
		if strings.HasPrefix(strings.TrimSpace(f), "-") {
			return nil, bad("filter %q: a tcpdump filter does not start with -", f)
		}
		// fmslice's command line takes a lone word naming one of its
		// commands as that command, even after "--"; none is a filter.
		switch strings.TrimSpace(f) {
		case "help", "h", "info", "flows", "timeline":
			return nil, bad("filter %q: not a tcpdump filter", f)
		}
		r.a.Filter = f
		r.args = append(r.args, "--", f)
	}
	return r, nil
}

func (r *request) addJSON() error {
	if r.json {
		r.args = append(r.args, "--json")
	}
	return nil
}

func unixArg(ns int64) string {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	return fmt.Sprintf("%d.%09d", sec, frac)
}

// api serves an endpoint: who asks, the limits, the query, the audit line.
func (s *Server) api(endpoint string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Counted under mu, against drain's flag: no handler starts (and
		// no fmslice with it) once drain waits for the last one.
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			http.Error(w, "fmcapd is stopping", http.StatusServiceUnavailable)
			return
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()
		start := time.Now()
		a := auditLine{Remote: r.RemoteAddr, Endpoint: endpoint}
		abort, qid := false, ""
		status, n, complete, errText := func() (int, int64, bool, string) {
			id, err := s.identify(r)
			a.Client = id
			if err != nil {
				counter(&s.refused, "auth").Add(1)
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return http.StatusUnauthorized, 0, false, err.Error()
			}
			req, err := parseRequest(endpoint, r.URL.Query(), s.cfg.stores, s.cfg.Cache, start, s.cfg.MaxRange)
			if err != nil {
				counter(&s.refused, "bad_request").Add(1)
				http.Error(w, err.Error(), http.StatusBadRequest)
				return http.StatusBadRequest, 0, false, err.Error()
			}
			req.a.Client, req.a.Remote = a.Client, a.Remote
			a, abort, qid = req.a, req.abort, req.id
			if !s.acquire(id) {
				counter(&s.refused, "concurrency").Add(1)
				msg := fmt.Sprintf("%s has %d queries running already (max_concurrent)", id, s.cfg.MaxConcurrent)
				http.Error(w, msg, http.StatusTooManyRequests)
				return http.StatusTooManyRequests, 0, false, msg
			}
			defer s.release(id)
			s.running.Add(1)
			defer s.running.Add(-1)
			return s.run(w, r, req)
		}()
		a.Status, a.Bytes, a.Complete, a.Error = status, n, complete, errText
		a.Time, a.Millis = start.UTC().Format(time.RFC3339Nano), time.Since(start).Milliseconds()
		counter(&s.queries, endpoint+" "+strconv.Itoa(status)).Add(1)
		s.writeAudit(&a)
		if qid != "" && status == http.StatusOK {
			s.outcomes.put(outcomeKey{a.Client, qid}, outcome{Complete: complete, Error: errText, Bytes: n, at: time.Now()})
		}
		if abort && status == http.StatusOK && !complete {
			// Cut the stream (HTTP/2: RST_STREAM; HTTP/1.1: the connection
			// closed before the last chunk), so that a client that cannot
			// read trailers (a browser's fetch, curl) sees a failed
			// transfer rather than a short file.
			panic(http.ErrAbortHandler)
		}
	}
}

// run runs fmslice for req and streams its answer.
func (s *Server) run(w http.ResponseWriter, r *http.Request, req *request) (status int, sent int64, complete bool, errText string) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	defer context.AfterFunc(s.stopQueries, cancel)() // shutdown_grace over (drain)
	name, args := s.fmslice, req.args
	if len(s.lowPrio) > 0 { // ionice and nice exec fmslice: the same process
		name, args = s.lowPrio[0], append(append(s.lowPrio[1:len(s.lowPrio):len(s.lowPrio)], s.fmslice), req.args...)
	}
	cmd := exec.CommandContext(ctx, name, args...)
	// Its own process group, killed whole; no FMCAP_* settings of ours.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = s.env
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return http.StatusInternalServerError, 0, false, err.Error()
	}
	if err := cmd.Start(); err != nil {
		http.Error(w, "cannot run fmslice", http.StatusInternalServerError)
		return http.StatusInternalServerError, 0, false, err.Error()
	}
	// The first bytes, or the end: a refusal comes before any output.
	first := make([]byte, 64<<10)
	k, rerr := io.ReadAtLeast(out, first, 1)
	if k == 0 {
		werr := cmd.Wait()
		msg := strings.TrimSpace(strings.TrimPrefix(stderr.String(), "fmslice: "))
		if ctx.Err() == context.DeadlineExceeded {
			msg := fmt.Sprintf("query_timeout (%v) reached before the answer started", s.cfg.QueryTimeout)
			http.Error(w, msg, http.StatusGatewayTimeout)
			return http.StatusGatewayTimeout, 0, false, msg
		}
		if s.stopQueries.Err() != nil {
			msg := s.drainedText("started")
			http.Error(w, msg, http.StatusServiceUnavailable)
			return http.StatusServiceUnavailable, 0, false, msg
		}
		if ctx.Err() != nil {
			return 499, 0, false, "client gone before the answer started"
		}
		if code := exitCode(werr); code == 1 || code == 2 {
			http.Error(w, msg, http.StatusBadRequest)
			return http.StatusBadRequest, 0, false, msg
		}
		if werr == nil && rerr == io.EOF { // an empty answer (a JSON command always writes)
			w.WriteHeader(http.StatusOK)
			return http.StatusOK, 0, true, ""
		}
		http.Error(w, "fmslice: "+msg, http.StatusInternalServerError)
		return http.StatusInternalServerError, 0, false, msg
	}
	h := w.Header()
	switch {
	case req.endpoint != "pcap" && req.json:
		h.Set("Content-Type", "application/json")
	case req.endpoint != "pcap":
		h.Set("Content-Type", "text/plain; charset=utf-8")
	case req.a.Format == "pcapng":
		h.Set("Content-Type", "application/x-pcapng")
		h.Set("Content-Disposition", `attachment; filename="fmcap.pcapng"`)
	default:
		h.Set("Content-Type", "application/vnd.tcpdump.pcap")
		h.Set("Content-Disposition", `attachment; filename="fmcap.pcap"`)
	}
	h.Set("Trailer", "Fmcap-Complete, Fmcap-Error")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		if s.cfg.MaxBytes > 0 && sent+int64(len(b)) > s.cfg.MaxBytes {
			return errByteLimit
		}
		// A client that stops reading must not hold its slot for ever: each
		// write gets a minute.
		rc.SetWriteDeadline(time.Now().Add(time.Minute))
		m, err := w.Write(b)
		sent += int64(m)
		s.bytesSent.Add(uint64(m))
		return err
	}
	werr := write(first[:k])
	buf := first
	for werr == nil {
		k, rerr := out.Read(buf)
		if k > 0 {
			werr = write(buf[:k])
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr != nil {
			break
		}
	}
	if werr != nil {
		cancel() // the client is gone, or the limit: stop fmslice now
	}
	exitErr := cmd.Wait()
	drained := s.stopQueries.Err() != nil
	switch {
	case errors.Is(werr, errByteLimit):
		errText = fmt.Sprintf("answer cut at max_bytes (%d)", s.cfg.MaxBytes)
	case drained && (werr != nil || exitErr != nil):
		errText = s.drainedText("complete")
	case werr != nil:
		errText = "client gone: " + werr.Error()
	case ctx.Err() == context.DeadlineExceeded:
		errText = fmt.Sprintf("query_timeout (%v) reached", s.cfg.QueryTimeout)
	case exitErr != nil:
		errText = strings.TrimSpace(strings.TrimPrefix(stderr.String(), "fmslice: "))
		if errText == "" {
			errText = exitErr.Error()
		}
	default:
		complete = true
	}
	h.Set("Fmcap-Complete", map[bool]string{true: "yes", false: "no"}[complete])
	if errText != "" {
		h.Set("Fmcap-Error", oneLine(errText))
	}
	return http.StatusOK, sent, complete, errText
}

var errByteLimit = errors.New("byte limit")

// drainedText says a query was cut at shutdown before its answer was
// started or complete.
func (s *Server) drainedText(what string) string {
	return fmt.Sprintf("fmcapd stopped: shutdown_grace (%v) was over before the answer was %s", s.cfg.ShutdownGrace, what)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// oneLine makes text fit a header value.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return s
}

// limitedBuffer keeps the first 64 KiB written to it (fmslice's stderr).
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
