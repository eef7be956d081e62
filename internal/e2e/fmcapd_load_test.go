package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slowRead reads body n bytes at a time with a pause after each read, as a
// client on a slow link would, into w.
func slowRead(w io.Writer, body io.Reader, n int, pause time.Duration) (int64, error) {
	buf := make([]byte, n)
	var total int64
	for {
		k, err := body.Read(buf)
		w.Write(buf[:k])
		total += int64(k)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		time.Sleep(pause)
	}
}

// smallWindow makes c's HTTP/2 streams take 64 KiB before the body is
// read: fmcapd can then send no more than that ahead of the reader, so a
// query is under way, holding its slot, for as long as its client does not
// read (Go's default is 4 MiB, which would hold a whole small answer).
func smallWindow(c *http.Client) *http.Client {
	c.Transport.(*http.Transport).HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10}
	return c
}

// auditLines are the audit file's lines, decoded.
func auditLines(t *testing.T, file string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var a map[string]any
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, a)
	}
	return out
}

// processesWith lists the processes whose command line holds s.
func processesWith(s string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestFmcapdDrain: on SIGTERM fmcapd stops accepting connections; a slow
// client whose answer ends within shutdown_grace gets it whole (complete,
// fmslice's bytes); a client still holding its answer when the grace is
// over gets it cut, flagged incomplete with shutdown_grace named, a prefix
// of fmslice's bytes; both are audited so, the log says it, no fmslice is
// left, and fmcapd exits 0.
func TestFmcapdDrain(t *testing.T) {
	need(t, "tcpdump")
	gen := genCapture(t, 200000)
	st := store(t, []string{gen})
	ts := packetTimes(t, gen)
	p := newPKI(t)
	audit := filepath.Join(t.TempDir(), "audit.log")
	f := launchFmcapd(t, "https", "--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--client-ca", p.caFile,
		"--audit-log", audit, "--store", st, "--max-range", "0", "--shutdown-grace", "20s")

	// Two queries under way: a twentieth of the capture for the slow
	// client that will finish, the whole of it for the one that holds on.
	small := []string{"--from", unixArg(ts[0]), "--to", unixArg(ts[len(ts)/20])}
	whole := []string{"--from", "0", "--to", "now"}
	open := func(r []string) *http.Response {
		resp, err := smallWindow(p.client(&p.good)).Get(f.url + "/api/v1/pcap?" + q("from", r[1], "to", r[3]))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("query %v: %v %v", r, err, resp)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	respA, respB := open(small), open(whole)
	wantA := run(t, bin("fmslice"), append([]string{"--store", st, "-q"}, small...)...)
	wantB := run(t, bin("fmslice"), append([]string{"--store", st, "-q"}, whole...)...)
	if len(wantB) < 8<<20 || len(wantA) < 512<<10 {
		t.Fatalf("answers of %d and %d bytes: too small to be under way for long", len(wantA), len(wantB))
	}
	t.Logf("answers of %d and %d bytes", len(wantA), len(wantB))

	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// It stops accepting (both answers still under way).
	host := strings.TrimPrefix(f.url, "https://")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("fmcapd still accepts connections 60 s after SIGTERM")
		}
	}
	// The slow client: 16 KiB every 10 ms. Its answer is whole.
	var gotA bytes.Buffer
	if _, err := slowRead(&gotA, respA.Body, 16<<10, 10*time.Millisecond); err != nil {
		t.Fatalf("slow client: %v after %d bytes", err, gotA.Len())
	}
	if !bytes.Equal(gotA.Bytes(), wantA) || respA.Trailer.Get("Fmcap-Complete") != "yes" {
		t.Fatalf("slow client within the grace: %d bytes, fmslice %d; trailer %v", gotA.Len(), len(wantA), respA.Trailer)
	}
	// The client that holds on reads 4 KiB every 100 ms until fmcapd says
	// the grace is over, then the rest at once: its answer ends, cut and
	// flagged.
	var gotB bytes.Buffer
	buf := make([]byte, 4<<10)
	for deadline := time.Now().Add(3 * time.Minute); !strings.Contains(f.logText(), "shutdown_grace over"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the grace's end after 3 minutes:\n%s", f.logText())
		}
		k, err := respB.Body.Read(buf)
		gotB.Write(buf[:k])
		if err != nil {
			t.Fatalf("the held answer ended before the grace did: %v after %d bytes", err, gotB.Len())
		}
	}
	if _, err := io.Copy(&gotB, respB.Body); err != nil {
		t.Fatalf("the cut answer: %v after %d bytes (its end and trailer should come)", err, gotB.Len())
	}
	if gotB.Len() >= len(wantB) || !bytes.Equal(gotB.Bytes(), wantB[:gotB.Len()]) {
		t.Errorf("the cut answer: %d bytes, not a proper prefix of fmslice's %d", gotB.Len(), len(wantB))
	}
	if respB.Trailer.Get("Fmcap-Complete") != "no" || !strings.Contains(respB.Trailer.Get("Fmcap-Error"), "shutdown_grace (20s)") {
		t.Errorf("the cut answer's trailer: %v", respB.Trailer)
	}

	// fmcapd exits 0 once both are audited; nothing of it is left.
	exited := make(chan error, 1)
	go func() { <-f.done; exited <- f.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("fmcapd after the drain: %v\n%s", err, f.logText())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("fmcapd still runs 2 minutes after the cut answer ended:\n%s", f.logText())
	}
	if left := processesWith(st); len(left) > 0 {
		t.Errorf("processes left on the store: %q", left)
	}
	var complete, cut int
	for _, a := range auditLines(t, audit) {
		switch {
		case a["endpoint"] == "pcap" && a["status"] == 200.0 && a["complete"] == true && a["bytes"] == float64(len(wantA)):
			complete++
		case a["endpoint"] == "pcap" && a["status"] == 200.0 && a["complete"] == false && a["bytes"] == float64(gotB.Len()) &&
			strings.Contains(fmt.Sprint(a["error"]), "shutdown_grace"):
			cut++
		}
	}
	if complete != 1 || cut != 1 {
		b, _ := os.ReadFile(audit)
		t.Errorf("audit: %d complete answers (want 1), %d cut at shutdown_grace (want 1):\n%s", complete, cut, b)
	}
	if lg := f.logText(); !strings.Contains(lg, `msg="stopping: no new connections; running queries may finish" running=2`) ||
		!strings.Contains(lg, "running=1 shutdown_grace=20s") || !strings.Contains(lg, `msg=stopped`) {
		t.Errorf("log:\n%s", lg)
	}
}

// TestFmcapdConcurrentLive: 50 slices at once from one fmcapd while
// fminject feeds the writer as fast as it can (a blocking producer: the
// ring is full and the writer at its own pace the whole time). Every answer
// is complete and byte for byte what fmslice writes for the same range,
// filter and format; a 51st query while the 50 are under way gets 429
// (max_concurrent 50); nothing stalls; and capture goes on through it all:
// every packet fminject produced is in the store. Outcomes are asserted,
// not times: the windows are sized by the capture's own rate, and the
// deadlines are minutes.
func TestFmcapdConcurrentLive(t *testing.T) { concurrentSlices(t, false) }

// TestFmcapdConcurrentNICPaced: the same with a producer that behaves like
// a NIC (fminject --live: a full ring drops, counted) at a steady 30 000
// packets a second, the ring holding seconds of it: capture drops nothing
// while the 50 queries run (fmcapd runs them at a lower CPU and I/O
// priority than capture), as fminject's and the ring's counters say.
func TestFmcapdConcurrentNICPaced(t *testing.T) { concurrentSlices(t, true) }

func concurrentSlices(t *testing.T, nicPaced bool) {
	const n = 50
	gen := multiFlow(t, 200000)
	r := ringPath(t)
	size, want := "64MiB", uint64(1000000)
	injArgs := []string{"--ring", r, "--now", "--loop", "0"}
	if nicPaced {
		size, want = "256MiB", 600000 // 20 s of capture first
		injArgs = append(injArgs, "--live", "--pps", "30000")
	}
	run(t, bin("fmring"), "create", "--ring", r, "--size", size, "--consumer", "writer:lossless")
	st := filepath.Join(t.TempDir(), "store")
	writer := exec.Command(bin("writer"), "--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--metrics", "", "--chunk-age", "2s")
	var injErr bytes.Buffer
	inj := exec.Command(bin("fminject"), append(injArgs, gen)...)
	inj.Stderr = &injErr
	exited := map[*exec.Cmd]chan struct{}{}
	for _, c := range []*exec.Cmd{writer, inj} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		exited[c] = done
		go func() { c.Wait(); close(done) }()
		t.Cleanup(func() { c.Process.Kill(); <-done })
	}
	// stopCapture ends fminject (it closes the ring: the writer then
	// stores what is left and exits) and returns its summary line.
	stopCapture := func() string {
		inj.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited[inj]:
		case <-time.After(3 * time.Minute):
			t.Fatal("fminject still runs 3 minutes after SIGTERM")
		}
		return injErr.String()
	}
	defer stopCapture()
	// A million packets in the store first.
	deadline := time.Now().Add(3 * time.Minute)
	for _, err := os.Stat(st); err != nil; _, err = os.Stat(st) {
		if time.Now().After(deadline) {
			t.Fatalf("no store after 3 minutes: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var si = storeInfo(t, st)
	for ; si.Packets < want; si = storeInfo(t, st) {
		if time.Now().After(deadline) {
			t.Fatalf("the store holds %d packets after 3 minutes", si.Packets)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Windows of at least 10 000 packets each (capture has pauses, when
	// the writer is slow and the ring full: the windows are found from the
	// store's timeline), spread over what is stored before its last packet
	// then: every packet of each window is stored before the queries run.
	var tl struct {
		StepNS  int64 `json:"step_ns"`
		Buckets []struct {
			StartNS int64 `json:"start_ns"`
			Packets int64 `json:"packets"`
		} `json:"buckets"`
	}
	if err := json.Unmarshal(run(t, bin("fmslice"), "timeline", "--store", st, "--from", unixArg(si.FirstNS), "--to", unixArg(si.LastNS+1), "--step", "5ms", "--json", "-q"), &tl); err != nil {
		t.Fatal(err)
	}
	type window struct{ from, to int64 }
	var windows []window
	var cur window
	var count int64
	for _, b := range tl.Buckets {
		if count == 0 {
			cur.from = b.StartNS
		}
		count += b.Packets
		if count >= 10000 {
			// Before the last packet's time, not after it: a packet
			// stamped the same nanosecond may still be on its way.
			cur.to = min(b.StartNS+tl.StepNS, si.LastNS)
			windows = append(windows, cur)
			count = 0
		}
	}
	if len(windows) < n {
		t.Fatalf("%d windows of 10 000 packets in the store's %d packets", len(windows), si.Packets)
	}
	filters := []string{"", "tcp", "udp or port 443", "not port 443", "tcp and not port 443"}
	type query struct{ from, to, filter, format string }
	qs := make([]query, n)
	for i := range qs {
		w := windows[i*(len(windows)-1)/(n-1)]
		qs[i] = query{unixArg(w.from), unixArg(w.to), filters[i%len(filters)], "pcap"}
		if i%3 == 2 {
			qs[i].format = "pcapng"
		}
	}

	p := newPKI(t)
	audit := filepath.Join(t.TempDir(), "audit.log")
	f := launchFmcapd(t, "https", "--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--client-ca", p.caFile,
		"--audit-log", audit, "--store", st, "--max-range", "0", "--max-concurrent", fmt.Sprint(n))
	// One client, its streams held to 64 KiB ahead of its reads: each
	// query stays under way, in its slot, until its body is read.
	c := smallWindow(p.client(&p.good))
	c.Timeout = 10 * time.Minute
	type result struct {
		status          int
		bytes           int64
		sum             [sha256.Size]byte
		complete, cause string
		err             error
	}
	started, results := make(chan error, n), make([]chan result, n)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	for i, qq := range qs {
		results[i] = make(chan result, 1)
		go func() {
			resp, err := c.Get(f.url + "/api/v1/pcap?" + q("from", qq.from, "to", qq.to, "filter", qq.filter, "format", qq.format))
			if err == nil && resp.StatusCode != 200 {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
			}
			started <- err
			if err != nil {
				results[i] <- result{err: err}
				return
			}
			defer resp.Body.Close()
			<-release
			h := sha256.New()
			k, err := io.Copy(h, resp.Body)
			results[i] <- result{resp.StatusCode, k, [sha256.Size]byte(h.Sum(nil)), resp.Trailer.Get("Fmcap-Complete"), resp.Trailer.Get("Fmcap-Error"), err}
		}()
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("a query of the %d: %v", n, err)
			}
		case <-time.After(5 * time.Minute):
			t.Fatalf("%d of %d queries started within 5 minutes", i, n)
		}
	}
	t.Logf("%d queries under way after %v", n, time.Since(t0).Round(time.Millisecond))
	// All 50 under way: a 51st is refused with the documented answer.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, m := get(t, c, f.url+"/metrics")
		if strings.Contains(string(m), fmt.Sprintf("fmcapd_queries_running %d\n", n)) {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(audit)
			t.Fatalf("fmcapd does not count %d queries running:\n%s\naudit:\n%s", n, m, b)
		}
	}
	resp, body := get(t, c, f.url+"/api/v1/pcap?"+q("from", qs[0].from, "to", qs[0].to))
	if want := fmt.Sprintf("cert:analyst has %d queries running already (max_concurrent)", n); resp.StatusCode != 429 || strings.TrimSpace(string(body)) != want {
		t.Errorf("the query over the limit: %d %q, want 429 %q", resp.StatusCode, body, want)
	}
	before := ringCounters(t, r)
	releaseOnce.Do(func() { close(release) })
	got := make([]result, n)
	for i := range got {
		select {
		case got[i] = <-results[i]:
		case <-time.After(10 * time.Minute):
			t.Fatalf("query %d (%+v) still unanswered after 10 minutes", i, qs[i])
		}
	}
	if after := ringCounters(t, r); after.Written <= before.Written || after.writer().CursorSeq <= before.writer().CursorSeq {
		t.Errorf("capture did not go on while the answers were read: ring %+v before, %+v after", before, after)
	}

	// Capture stops; the writer stores what is left and exits. Every
	// packet produced is stored, none dropped.
	summary := stopCapture()
	var injected, dropped uint64
	if i := strings.LastIndex(summary, "fminject: "); i < 0 {
		t.Fatalf("fminject's summary: %s", summary)
	} else if _, err := fmt.Sscanf(summary[i:], "fminject: %d packets injected, %d dropped", &injected, &dropped); err != nil {
		t.Fatalf("fminject's summary: %v: %s", err, summary)
	}
	select {
	case <-exited[writer]:
	case <-time.After(3 * time.Minute):
		t.Fatal("the writer still runs 3 minutes after the capture ended")
	}
	if writer.ProcessState.ExitCode() != 0 {
		t.Fatalf("writer: %v", writer.ProcessState)
	}
	rc := ringCounters(t, r)
	if si := storeInfo(t, st); si.Packets != injected || dropped != 0 || rc.Written != injected || rc.Drops != 0 ||
		rc.writer().Missed != 0 || rc.writer().CursorSeq != rc.NextSeq {
		t.Errorf("fminject produced %d packets (%d dropped); the store holds %d; the ring's counters: %+v", injected, dropped, si.Packets, rc)
	}

	// Each answer: complete, and fmslice's bytes for the same query.
	var total int64
	for i, g := range got {
		qq := qs[i]
		args := []string{"--store", st, "--from", qq.from, "--to", qq.to, "-q", "--format", qq.format}
		if qq.filter != "" {
			args = append(args, qq.filter)
		}
		cmd := exec.Command(bin("fmslice"), args...)
		h := sha256.New()
		var cnt countingWriter
		cmd.Stdout = io.MultiWriter(h, &cnt)
		if err := cmd.Run(); err != nil {
			t.Fatalf("fmslice %q: %v", args, err)
		}
		if g.err != nil || g.complete != "yes" || g.bytes != cnt.n || g.sum != [sha256.Size]byte(h.Sum(nil)) {
			t.Errorf("query %d %+v: %d bytes, complete %q (%s), err %v; fmslice wrote %d bytes, same SHA-256: %v",
				i, qq, g.bytes, g.complete, g.cause, g.err, cnt.n, g.sum == [sha256.Size]byte(h.Sum(nil)))
		}
		total += g.bytes
	}
	var ok, refused int
	for _, a := range auditLines(t, audit) {
		switch {
		case a["endpoint"] == "pcap" && a["status"] == 200.0 && a["complete"] == true:
			ok++
		case a["endpoint"] == "pcap" && a["status"] == 429.0:
			refused++
		}
	}
	if ok != n || refused != 1 {
		t.Errorf("audit: %d complete answers (want %d), %d refused (want 1)", ok, n, refused)
	}
	t.Logf("%d slices of about 10 000 packets each, %d bytes in all, complete and equal to fmslice's; %d packets captured meanwhile, all stored", n, total, injected)
}

// ringInfo is what fmring info --json says of a ring's producer and
// consumers.
type ringInfo struct {
	NextSeq, Written, Drops uint64
	Consumers               []ringConsumer
}

type ringConsumer struct {
	Name                        string
	CursorSeq, Missed, Overruns uint64
}

func ringCounters(t *testing.T, ring string) (ri ringInfo) {
	t.Helper()
	if err := json.Unmarshal(run(t, bin("fmring"), "info", "--ring", ring, "--json"), &ri); err != nil {
		t.Fatal(err)
	}
	return ri
}

// writer is the writer's consumer entry.
func (ri ringInfo) writer() ringConsumer {
	for _, c := range ri.Consumers {
		if c.Name == "writer" {
			return c
		}
	}
	return ringConsumer{}
}

// countingWriter counts what is written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// TestFmcapdDisconnect: a client that goes away in the middle of an answer
// cancels its query: its fmslice is gone, and fmcapd is left with no more
// goroutines and file descriptors than before it (its own /metrics:
// go_goroutines, process_open_fds), no query running, and the query
// audited as the client's going.
func TestFmcapdDisconnect(t *testing.T) {
	gen := genCapture(t, 200000)
	st := store(t, []string{gen})
	p := newPKI(t)
	audit := filepath.Join(t.TempDir(), "audit.log")
	f := launchFmcapd(t, "https", "--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--client-ca", p.caFile,
		"--audit-log", audit, "--store", st, "--max-range", "0")
	c := smallWindow(p.client(&p.good))
	metric := func(name string) int {
		_, m := get(t, c, f.url+"/metrics")
		for _, l := range strings.Split(string(m), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatalf("no %s in fmcapd's metrics:\n%s", name, m)
		return 0
	}
	// A whole query first, so that the connection and what serves it are
	// in the baseline.
	if resp, body := get(t, c, f.url+"/api/v1/pcap?"+q("from", "0", "to", "now", "filter", "host 198.18.99.99")); resp.StatusCode != 200 || len(body) < 24 {
		t.Fatalf("a first query: %d, %d bytes", resp.StatusCode, len(body))
	}
	baseG, baseFD := metric("go_goroutines"), metric("process_open_fds")
	resp, err := c.Get(f.url + "/api/v1/pcap?" + q("from", "0", "to", "now"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the query: %v %v", err, resp)
	}
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("the first 64 KiB: %v", err)
	}
	if n := childrenOf(f.cmd.Process.Pid); n != 1 {
		t.Fatalf("%d fmslice processes under way, want 1", n)
	}
	resp.Body.Close() // the client goes
	var g, fd, running, kids int
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		g, fd, running, kids = metric("go_goroutines"), metric("process_open_fds"), metric("fmcapd_queries_running"), childrenOf(f.cmd.Process.Pid)
		if g <= baseG && fd <= baseFD && running == 0 && kids == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after the client went: %d goroutines (%d before), %d fds (%d before), %d queries running, %d fmslice processes",
				g, baseG, fd, baseFD, running, kids)
		}
	}
	var last struct {
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(audit)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) >= 2 && json.Unmarshal([]byte(lines[len(lines)-1]), &last) == nil && last.Status != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit line for the query:\n%s", b)
		}
	}
	if !strings.Contains(last.Error, "client gone") {
		t.Errorf("the query the client left is audited %d %q, want it said the client went", last.Status, last.Error)
	}
}

// childrenOf counts the processes whose parent is pid.
func childrenOf(pid int) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: the fields after the comm's ')'.
		if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n++
		}
	}
	return n
}
