package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/shmring"
)

// The tests run fmctl itself: the test binary re-executes as fmctl when
// this variable is set, so main's exit status and output are what is
// checked.
const asFmctl = "FMCTL_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asFmctl) != "" {
		os.Args = append([]string{"fmctl"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fmctl runs the command with env added to an environment cleared of
// fmcap's variables (a developer's FMCAP_FWD_CONTROL must not steer it),
// and returns its stdout, stderr and exit status.
func fmctl(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "FMCAP_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(append(cmd.Env, asFmctl+"=1"), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// tempDir is a directory of the test's own, short enough for a socket's
// path (108 bytes), which a long $TMPDIR can exceed.
func tempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 {
		d, err := os.MkdirTemp("/tmp", "fmctl")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return dir
}

// fwd plays fwd's control socket: one JSON request per connection,
// answered with what answer returns (fwd's control.go speaks the same way).
// The requests, as read, come out of reqs, in order: connections are
// served one at a time.
type fwd struct {
	path string
	reqs chan string
}

func startFwd(t *testing.T, answer func(ctl.Request) ctl.Response) *fwd {
	t.Helper()
	f := &fwd{path: filepath.Join(tempDir(t), "fwd.sock"), reqs: make(chan string, 16)}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			var req ctl.Request
			var resp ctl.Response
			if err != nil {
				resp.Error = "read: " + err.Error()
			} else if err := json.Unmarshal([]byte(line), &req); err != nil {
				resp.Error = "bad request: " + err.Error()
			} else {
				resp = answer(req)
			}
			f.reqs <- strings.TrimSuffix(line, "\n")
			json.NewEncoder(c).Encode(&resp)
			c.Close()
		}
	}()
	return f
}

// next is the request fwd got for the command just run.
func (f *fwd) next(t *testing.T) string {
	t.Helper()
	select {
	case r := <-f.reqs:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("fwd got no request")
		return ""
	}
}

// none checks that the command just run sent fwd nothing: a rules list
// run after it must be the next request fwd reads.
func (f *fwd) none(t *testing.T) {
	t.Helper()
	if _, stderr, code := fmctl(t, nil, "--socket", f.path, "rules", "list"); code != 0 {
		t.Fatalf("rules list: exit %d: %s", code, stderr)
	}
	if got := f.next(t); got != `{"cmd":"rules.list"}` {
		t.Errorf("fwd got %s, want nothing before the rules list", got)
	}
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n%s\nwant:\n%s", what, got, want)
	}
}

// The rule set the canned fwd holds: one rule as fmctl rules add writes
// it, one with the defaults left out (snap 0, no capture: shown as fwd
// applies them, 65535 and both).
var rules = []ctl.Rule{
	{ID: 1, In: "p0", Local: "10.0.0.1", Peer: "10.0.0.2", Out: "p1", OutLocal: "10.1.0.1", Target: "10.1.0.2", Snap: 128, Capture: "ingress"},
	{ID: 12, In: "p0", Local: "fd00::1", Peer: "fd00::2", Out: "p1", OutLocal: "fd01::1", Target: "fd01::2"},
}

const rulesTable = `ID  IN  LOCAL     PEER      OUT  OUT_LOCAL  TARGET    SNAP   CAPTURE
1   p0  10.0.0.1  10.0.0.2  p1   10.1.0.1   10.1.0.2  128    ingress
12  p0  fd00::1   fd00::2   p1   fd01::1    fd01::2   65535  both
`

const rulesJSON = `[
  {
    "id": 1,
    "in": "p0",
    "local": "10.0.0.1",
    "peer": "10.0.0.2",
    "out": "p1",
    "out_local": "10.1.0.1",
    "target": "10.1.0.2",
    "snap": 128,
    "capture": "ingress"
  },
  {
    "id": 12,
    "in": "p0",
    "local": "fd00::1",
    "peer": "fd00::2",
    "out": "p1",
    "out_local": "fd01::1",
    "target": "fd01::2"
  }
]
`

func TestRulesList(t *testing.T) {
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Rules: rules} })
	stdout, stderr, code := fmctl(t, nil, "--socket", f.path, "rules", "list")
	check(t, "request", f.next(t), `{"cmd":"rules.list"}`)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	check(t, "rules list", stdout, rulesTable)

	stdout, stderr, code = fmctl(t, nil, "--socket", f.path, "rules", "list", "--json")
	f.next(t)
	if code != 0 || stderr != "" {
		t.Errorf("--json: exit %d, stderr %q", code, stderr)
	}
	check(t, "rules list --json", stdout, rulesJSON)
}

// No rules: fwd leaves the list out of its answer; a program reading
// --json still gets a list.
func TestRulesListEmpty(t *testing.T) {
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true} })
	stdout, _, code := fmctl(t, nil, "--socket", f.path, "rules", "list")
	f.next(t)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	check(t, "rules list", stdout, "ID  IN  LOCAL  PEER  OUT  OUT_LOCAL  TARGET  SNAP  CAPTURE\n")
	stdout, _, code = fmctl(t, nil, "--socket", f.path, "rules", "list", "--json")
	f.next(t)
	if code != 0 {
		t.Errorf("--json: exit %d", code)
	}
	check(t, "rules list --json", stdout, "[]\n")
}

// Each edit sends the request fwd decodes and prints the rule set fwd
// answers with, which is the set in force after the edit.
func TestRuleEdits(t *testing.T) {
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Rules: rules} })
	for _, tc := range []struct {
		args []string
		req  string
	}{
		{[]string{"rules", "add", "--id", "12", "--in", "p0", "--local", "fd00::1", "--peer", "fd00::2", "--out", "p1", "--out-local", "fd01::1", "--target", "fd01::2"},
			`{"cmd":"rules.add","rule":{"id":12,"in":"p0","local":"fd00::1","peer":"fd00::2","out":"p1","out_local":"fd01::1","target":"fd01::2","snap":65535,"capture":"both"}}`},
		{[]string{"rules", "add", "--id=1", "--in=p0", "--local=10.0.0.1", "--peer=10.0.0.2", "--out=p1", "--out-local=10.1.0.1", "--target=10.1.0.2", "--snap=128", "--mode=ingress", "--ip-options=pass"},
			`{"cmd":"rules.add","rule":{"id":1,"in":"p0","local":"10.0.0.1","peer":"10.0.0.2","out":"p1","out_local":"10.1.0.1","target":"10.1.0.2","snap":128,"capture":"ingress","ip_options":"pass"}}`},
		{[]string{"rules", "del", "3"}, `{"cmd":"rules.del","id":3}`},
		{[]string{"rules", "set-mode", "12", "none"}, `{"cmd":"rules.set-mode","id":12,"mode":"none"}`},
	} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, tc.args...)...)
		check(t, tc.args[1]+" request", f.next(t), tc.req)
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit %d, stderr %q", tc.args[1], code, stderr)
		}
		check(t, tc.args[1]+" output", stdout, rulesTable)
	}
	stdout, _, _ := fmctl(t, nil, "--socket", f.path, "rules", "del", "--json", "3")
	f.next(t)
	check(t, "del --json", stdout, rulesJSON)
}

// A refused edit: fwd's reason on stderr after "fmctl: ", nothing on
// stdout (a script must not read a rule table from it), exit status 1.
func TestRefused(t *testing.T) {
	reason := "rule 3: no such rule; nothing changed"
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{Error: reason} })
	for _, args := range [][]string{
		{"rules", "del", "3"},
		{"rules", "del", "--json", "3"},
		{"rules", "set-mode", "3", "both"},
	} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, args...)...)
		f.next(t)
		if code != 1 || stdout != "" || stderr != "fmctl: "+reason+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, fmctl: %s", args, code, stdout, stderr, reason)
		}
	}
}

// Arguments fmctl can judge by itself are refused before fwd is asked.
func TestBadArguments(t *testing.T) {
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Rules: rules} })
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"rules", "del", "x"}, `fmctl: rule id "x": give a number > 0`},
		{[]string{"rules", "del", "0"}, `fmctl: rule id "0": give a number > 0`},
		{[]string{"rules", "del"}, `fmctl: rule id "": give a number > 0`},
		{[]string{"rules", "set-mode", "3"}, `fmctl: usage: fmctl rules set-mode ID MODE`},
		{[]string{"rules", "add", "--id", "4", "--in", "p0", "--local", "10.0.0.1", "--peer", "10.0.0.2", "--out", "p1", "--out-local", "10.1.0.1"}, `fmctl: Required flag "target" not set`},
	} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, tc.args...)...)
		if code != 1 || !strings.HasSuffix(stderr, tc.stderr+"\n") {
			t.Errorf("%v: exit %d, stderr %q; want 1, %s", tc.args, code, stderr, tc.stderr)
		}
		if strings.Contains(stdout, "ID  IN") {
			t.Errorf("%v: printed a rule table: %q", tc.args, stdout)
		}
		f.none(t)
	}
}

// No fwd at the socket: the socket named, the cause, what to check, and
// exit status 1.
func TestUnreachable(t *testing.T) {
	path := filepath.Join(tempDir(t), "fwd.sock")
	for _, args := range [][]string{{"rules", "list"}, {"stats", "--json"}} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", path}, args...)...)
		want := fmt.Sprintf("fmctl: control socket %s: dial unix %s: connect: no such file or directory (is fwd running with this control path?)\n", path, path)
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, stdout, stderr, want)
		}
	}
}

// The socket is --socket, else fwd.control from the environment or
// --config, else the default.
func TestSocketChoice(t *testing.T) {
	answer := func(ctl.Request) ctl.Response { return ctl.Response{OK: true} }
	a, b := startFwd(t, answer), startFwd(t, answer)
	cfg := filepath.Join(tempDir(t), "fmcap.yaml")
	if err := os.WriteFile(cfg, []byte("fwd:\n  control: "+a.path+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want *fwd
	}{
		{"config", nil, []string{"--config", cfg}, a},
		{"flag over config", nil, []string{"--config", cfg, "--socket", b.path}, b},
		{"variable", []string{"FMCAP_FWD_CONTROL=" + b.path}, nil, b},
		{"config file from the environment", []string{"FMCAP_CONFIG=" + cfg}, nil, a},
	} {
		_, stderr, code := fmctl(t, tc.env, append(tc.args, "rules", "list")...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", tc.name, code, stderr)
			continue
		}
		// The other fwd must have got nothing: ask it, and see its
		// next request is that.
		other := a
		if tc.want == a {
			other = b
		}
		check(t, tc.name, tc.want.next(t), `{"cmd":"rules.list"}`)
		other.none(t)
	}
	// And the default, when nothing names one; only where no fwd of the
	// machine's own listens there, which this test must not talk to.
	if _, err := os.Stat(defaultSocket); err == nil {
		t.Logf("%s exists: the default is not tried", defaultSocket)
		return
	}
	_, stderr, code := fmctl(t, nil, "rules", "list")
	if code != 1 || !strings.HasPrefix(stderr, "fmctl: control socket "+defaultSocket+": ") {
		t.Errorf("default socket: exit %d, stderr %q", code, stderr)
	}
}

var stats = &ctl.Stats{
	Forwarded: 1000, Captured: 1990, CaptureDrops: 10, SuperFrames: 2, TooBigSent: 1,
	Drops: map[string]uint64{"ttl_exceeded": 3, "no_rule": 41},
	Ports: []ctl.PortStats{
		{Name: "p0", RxPackets: 1044, RxBytes: 104400, TxPackets: 12, TxBytes: 1200, NICDrops: 5},
		{Name: "p1", RxPackets: 7, RxBytes: 700, TxPackets: 1000, TxBytes: 100000, TxStalls: 2, TxStalled: true},
	},
	Rules:     []ctl.RuleStats{{ID: 1, Mode: "both", FwdPackets: 600, FwdBytes: 60000, RevPackets: 400, RevBytes: 40000}},
	Neighbors: []ctl.Neighbor{{Port: "p1", IP: "10.1.0.2", MAC: "02:00:00:00:00:02", State: "reachable", Queued: 0}},
}

const statsText = `forwarded                  1000
captured                   1990
capture drops (ring full)  10

not forwarded, by reason:
  no rule       41
  ttl exceeded  3

PORT  RX PKTS  RX BYTES  TX PKTS  TX BYTES  NIC DROPS  TX STALLS
p0    1044     104400    12       1200      5          0
p1    7        700       1000     100000    0          2 (stalled now)

RULE  CAPTURE  A→B PKTS  A→B BYTES  B→A PKTS  B→A BYTES
1     both     600       60000      400       40000

NEIGHBOR  PORT  MAC                STATE      QUEUED
10.1.0.2  p1    02:00:00:00:00:02  reachable  0
`

func TestStats(t *testing.T) {
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Stats: stats} })
	stdout, stderr, code := fmctl(t, nil, "--socket", f.path, "stats")
	check(t, "request", f.next(t), `{"cmd":"stats"}`)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	check(t, "stats", stdout, statsText)

	stdout, _, code = fmctl(t, nil, "--socket", f.path, "stats", "--json")
	f.next(t)
	if code != 0 {
		t.Errorf("--json: exit %d", code)
	}
	var got ctl.Stats
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stats --json: %v in %q", err, stdout)
	}
	want, _ := json.MarshalIndent(stats, "", "  ")
	check(t, "stats --json", stdout, string(want)+"\n")
}

// stats --config: after fwd's figures, the ring's state read from the
// ring file, and the writer's and indexer's figures scraped from their
// metrics endpoints, help lines and the ring's metrics left out; an
// endpoint that does not answer is said so, and fmctl still succeeds.
func TestStatsPipeline(t *testing.T) {
	dir := tempDir(t)
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Stats: &ctl.Stats{}} })

	ring := filepath.Join(dir, "ring")
	if err := shmring.Create(ring, shmring.Config{DataSize: 1 << 16, MaxCaplen: 1500, FirstSeq: 7, Consumers: []shmring.ConsumerSpec{
		{Name: "writer", Mode: shmring.Lossless}, {Name: "indexer", Mode: shmring.Lossy},
	}}); err != nil {
		t.Fatal(err)
	}
	r, err := shmring.Open(ring)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NewProducer(shmring.Live)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		p.Write(1, 100, 0, shmring.DirIngress, 1, make([]byte, 100))
	}
	p.Detach() // publishes; the ring keeps what was written
	in := r.Info()
	r.Close()

	writer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "# HELP fmcap_writer_packets_total Packets stored.\n# TYPE fmcap_writer_packets_total counter\n"+
			"fmcap_writer_packets_total 3\n"+
			"# HELP fmcap_ring_written_total Records written to the ring.\n# TYPE fmcap_ring_written_total counter\n"+
			"fmcap_ring_written_total 3\n"+
			"# HELP fmcap_store_bytes Bytes.\n# TYPE fmcap_store_bytes gauge\n"+
			`fmcap_store_bytes{dir="a b"} 4096`+"\n")
	}))
	defer writer.Close()
	writerAddr := strings.TrimPrefix(writer.URL, "http://")
	// An address nobody listens on: one just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	indexerAddr := ln.Addr().String()
	ln.Close()

	cfg := filepath.Join(dir, "fmcap.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("ring:\n  path: %s\nfwd:\n  control: %s\nwriter:\n  metrics: %s\nindexer:\n  metrics: %s\n", ring, f.path, writerAddr, indexerAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := fmctl(t, nil, "--config", cfg, "stats")
	f.next(t)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if in.Written != 3 || in.Consumers[0].LagRecords != 3 || in.Consumers[1].LagRecords != 3 {
		t.Fatalf("ring %+v: not the state the test means to show", in)
	}
	// The ring's line and the consumer table share their columns; the
	// first is as wide as the ring's path.
	row := func(cells ...string) string {
		return fmt.Sprintf("%-*s%-11s%-9s%-13s%-11s%s\n", len("RING "+ring)+2, cells[0], cells[1], cells[2], cells[3], cells[4], cells[5])
	}
	lag := fmt.Sprint(in.Head)
	want := `forwarded                  0
captured                   0
capture drops (ring full)  0

PORT  RX PKTS  RX BYTES  TX PKTS  TX BYTES  NIC DROPS  TX STALLS

RULE  CAPTURE  A→B PKTS  A→B BYTES  B→A PKTS  B→A BYTES

NEIGHBOR  PORT  MAC  STATE  QUEUED

` + fmt.Sprintf("%-*swritten 3  drops 0  size 65536\n", len("RING "+ring)+2, "RING "+ring) +
		row("CONSUMER", "MODE", "PID", "LAG RECORDS", "LAG BYTES", "MISSED") +
		row("writer", "lossless", "0", "3", lag, "0") +
		row("indexer", "lossy", "0", "3", lag, "0") +
		"\nWRITER (http://" + writerAddr + "/metrics)\n" +
		"  fmcap_writer_packets_total    3\n" +
		"  fmcap_store_bytes{dir=\"a b\"}  4096\n" +
		"\nINDEXER (http://" + indexerAddr + "/metrics)\n" +
		fmt.Sprintf("  not reachable: Get \"http://%s/metrics\": dial tcp %s: connect: connection refused (is it running, with this metrics address?)\n", indexerAddr, indexerAddr)
	check(t, "stats --config", stdout, want)
}

var routes = []ctl.Route{
	{ID: 20, Prefix: "198.18.50.0/24", Via: "198.18.2.254", Out: "p1"},
	{ID: 23, Prefix: "2001:2:50::/48", Via: "2001:2:0:2::fe", Out: "p1", In: []string{"p0", "p2"}, Capture: "ingress", Snap: 96},
}

const routesTable = `ID  PREFIX          VIA             OUT  IN     SNAP   CAPTURE
20  198.18.50.0/24  198.18.2.254    p1   any    65535  both
23  2001:2:50::/48  2001:2:0:2::fe  p1   p0,p2  96     ingress
`

// Route commands send the request fwd decodes and print the routes fwd
// answers with (--json: the list, empty when there are none).
func TestRouteEdits(t *testing.T) {
	f := startFwd(t, func(req ctl.Request) ctl.Response {
		if req.Cmd == "routes.del" {
			return ctl.Response{OK: true} // the last route deleted: fwd leaves the list out
		}
		return ctl.Response{OK: true, Routes: routes}
	})
	for _, tc := range []struct {
		args      []string
		req, want string
	}{
		{[]string{"routes", "list"}, `{"cmd":"routes.list"}`, routesTable},
		{[]string{"routes", "add", "--id", "23", "--prefix", "2001:2:50::/48", "--via", "2001:2:0:2::fe", "--out", "p1", "--in", "p0,p2", "--mode", "ingress", "--snap", "96"},
			`{"cmd":"routes.add","route":{"id":23,"prefix":"2001:2:50::/48","via":"2001:2:0:2::fe","out":"p1","in":["p0","p2"],"capture":"ingress","snap":96}}`, routesTable},
		{[]string{"routes", "add", "--id=20", "--prefix=198.18.50.0/24", "--via=198.18.2.254", "--out=p1"},
			`{"cmd":"routes.add","route":{"id":20,"prefix":"198.18.50.0/24","via":"198.18.2.254","out":"p1","capture":"both","snap":65535}}`, routesTable},
		{[]string{"routes", "set-mode", "20", "none"}, `{"cmd":"routes.set-mode","id":20,"mode":"none"}`, routesTable},
		{[]string{"routes", "del", "--json", "20"}, `{"cmd":"routes.del","id":20}`, "[]\n"},
		{[]string{"routes", "list", "--json"}, `{"cmd":"routes.list"}`, `[
  {
    "id": 20,
    "prefix": "198.18.50.0/24",
    "via": "198.18.2.254",
    "out": "p1"
  },
  {
    "id": 23,
    "prefix": "2001:2:50::/48",
    "via": "2001:2:0:2::fe",
    "out": "p1",
    "in": [
      "p0",
      "p2"
    ],
    "capture": "ingress",
    "snap": 96
  }
]
`},
	} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, tc.args...)...)
		check(t, tc.args[1]+" request", f.next(t), tc.req)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
		check(t, strings.Join(tc.args, " "), stdout, tc.want)
	}
	for _, c := range []struct{ args []string }{{[]string{"routes", "del", "x"}}, {[]string{"routes", "set-mode", "20"}}} {
		if _, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, c.args...)...); code != 1 || !strings.Contains(stderr, "route id") && !strings.Contains(stderr, "usage: fmctl routes set-mode") {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, stderr)
		}
	}
}

// stats --config with an upload: section: the uploader's figures (its
// backlog, lag and lost chunks) follow, scraped from its metrics address.
func TestStatsUpload(t *testing.T) {
	dir := tempDir(t)
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Stats: &ctl.Stats{}} })
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# HELP fmcap_upload_backlog_chunks Finished chunks not yet uploaded.\n# TYPE fmcap_upload_backlog_chunks gauge\n"+
			"fmcap_upload_backlog_chunks 2\nfmcap_upload_backlog_bytes 8388608\nfmcap_upload_lag_seconds 41.5\nfmcap_upload_lost_chunks_total 0\n")
	}))
	defer up.Close()
	addr := strings.TrimPrefix(up.URL, "http://")
	cfg := filepath.Join(dir, "fmcap.yaml")
	// The writer's and indexer's addresses empty: not shown.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("fwd:\n  control: %s\nwriter:\n  metrics: \"\"\nindexer:\n  metrics: \"\"\nupload:\n  bucket: b\n  metrics: %s\n", f.path, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := fmctl(t, nil, "--config", cfg, "stats")
	f.next(t)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	want := "\nUPLOAD (http://" + addr + "/metrics)\n" +
		"  fmcap_upload_backlog_chunks     2\n" +
		"  fmcap_upload_backlog_bytes      8388608\n" +
		"  fmcap_upload_lag_seconds        41.5\n" +
		"  fmcap_upload_lost_chunks_total  0\n"
	if !strings.HasSuffix(stdout, want) {
		t.Errorf("stats --config with upload:\n%s\nwant it to end with\n%s", stdout, want)
	}
}

// The canned fwd's ports: a rules port, a GWLB and a mirror target.
var ports = []ctl.Port{
	{Name: "p0", Device: "eth1", Role: "none"},
	{Name: "g0", Device: "eth2", Role: "gwlb", Rule: 100, Capture: "ingress", Snap: 65535, Health: &ctl.Health{Protocol: "http", Port: 8080, Path: "/healthz", RequireCapture: true}},
	{Name: "m0", Device: "eth3", Role: "mirror", Rule: 200, Capture: "none", Snap: 128, VNI: []uint32{4242, 7}},
	{Name: "m1", Device: "eth4", Role: "mirror", Rule: 201, Capture: "ingress", Snap: 65535},
}

const portsTable = `PORT  DEVICE  ROLE    RULE  CAPTURE  SNAP   VNI     HEALTH_CHECK
p0    eth1    none    -     -        -      -       -
g0    eth2    gwlb    100   ingress  65535  -       http:8080/healthz (503 while captures drop)
m0    eth3    mirror  200   none     128    4242,7  -
m1    eth4    mirror  201   ingress  65535  any     -
`

// ports lists; set-capture and set-vni send the request fwd decodes and
// print the ports fwd answers with; what fmctl can judge is refused
// before fwd is asked.
func TestPorts(t *testing.T) {
	f := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{OK: true, Ports: ports} })
	for _, tc := range []struct {
		args []string
		req  string
	}{
		{[]string{"ports"}, `{"cmd":"ports.list"}`},
		{[]string{"ports", "list"}, `{"cmd":"ports.list"}`},
		{[]string{"ports", "set-capture", "g0", "none"}, `{"cmd":"ports.set-capture","mode":"none","port":"g0"}`},
		{[]string{"ports", "set-capture", "--snap", "96", "m0", "ingress"}, `{"cmd":"ports.set-capture","mode":"ingress","port":"m0","snap":96}`},
		{[]string{"ports", "set-vni", "m0", "4242,7"}, `{"cmd":"ports.set-vni","port":"m0","vni":[4242,7]}`},
		{[]string{"ports", "set-vni", "m0", "any"}, `{"cmd":"ports.set-vni","port":"m0"}`},
	} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, tc.args...)...)
		check(t, strings.Join(tc.args, " ")+" request", f.next(t), tc.req)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, stderr)
		}
		check(t, strings.Join(tc.args, " "), stdout, portsTable)
	}
	stdout, _, code := fmctl(t, nil, "--socket", f.path, "ports", "list", "--json")
	f.next(t)
	var got []ctl.Port
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || len(got) != 4 || got[2].VNI[1] != 7 || got[1].Health.Path != "/healthz" {
		t.Errorf("ports list --json: exit %d, %v: %s", code, err, stdout)
	}
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"ports", "set-capture", "g0"}, "usage: fmctl ports set-capture [--snap N] PORT ingress|none"},
		{[]string{"ports", "set-capture", "g0", "none", "--snap", "9"}, "usage: fmctl ports set-capture"},
		{[]string{"ports", "set-vni", "m0"}, "usage: fmctl ports set-vni PORT any|VNI[,VNI...]"},
		{[]string{"ports", "set-vni", "m0", "7,x"}, `vni "7,x": give any, or VNIs (numbers) separated by commas`},
		{[]string{"ports", "set-vni", "m0", "7,"}, `vni "7,": give any`},
	} {
		stdout, stderr, code := fmctl(t, nil, append([]string{"--socket", f.path}, tc.args...)...)
		if code != 1 || !strings.Contains(stderr, tc.stderr) || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, %s", tc.args, code, stdout, stderr, tc.stderr)
		}
		f.none(t)
	}
	// fwd's refusal comes through as rules' do.
	reason := `port "g0" gwlb capture "both": use ingress or none`
	r := startFwd(t, func(ctl.Request) ctl.Response { return ctl.Response{Error: reason} })
	if stdout, stderr, code := fmctl(t, nil, "--socket", r.path, "ports", "set-capture", "g0", "both"); code != 1 || stdout != "" || stderr != "fmctl: "+reason+"\n" {
		t.Errorf("refused: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	r.next(t)
}
