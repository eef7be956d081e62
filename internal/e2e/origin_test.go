package e2e

// A rule in capture mode both stores two copies of each packet it
// forwards: as received (ingress, on the port it came in) and as sent
// (egress, on the port it went out). The copies differ only in their
// addresses; the chunk's metadata keeps which is which, and fmslice's
// --port and --direction select each, exactly as tcpdump saw it on the
// link it crossed.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/ctl"
)

func TestBothModeDirections(t *testing.T) {
	tp := newTopo(t)
	need(t, "tshark")
	ring := makeRing(t, "64MiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := fwdConfig(t, tp, ring, "afpacket", nil, [2]string{tp.f0, tp.f1})
	run(t, bin("fwd"), "--check-config", cfg)
	fwd := tp.start(tp.nsF, nil, bin("fwd"), "--config", cfg)
	waitControl(t, cfg)
	writer := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", "")
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })

	// References: what fwd receives (f0, f1) and what it sends (a0, b0).
	refIn0, stop1 := tp.tcpdump(tp.nsF, tp.f0)
	refIn1, stop2 := tp.tcpdump(tp.nsF, tp.f1)
	refOutB, stop3 := tp.tcpdump(tp.nsB, tp.b0)
	refOutA, stop4 := tp.tcpdump(tp.nsA, tp.a0)
	// Rule 1 (both): A pings X, which is B behind fwd.
	sh(t, "ip", "netns", "exec", tp.nsA, "ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.1.1")
	if lost := stop1() + stop2() + stop3() + stop4(); lost != 0 {
		t.Fatalf("tcpdump dropped %d packets of the references", lost)
	}
	if s := waitStats(t, cfg, func(s ctl.Stats) bool { return s.Captured >= 20 }); s.Captured != 20 || s.CaptureDrops != 0 {
		t.Fatalf("captured %d, dropped %d: want the 20 copies of 10 packets", s.Captured, s.CaptureDrops)
	}
	fwd.Process.Signal(os.Interrupt)
	fwd.Wait()
	waitStored(t, ring)

	slice := func(args ...string) [][]byte {
		return pcapRecords(t, run(t, bin("fmslice"), append([]string{"--config", cfg, "--store", store, "--from", "0", "--to", "now", "-q"}, args...)...))
	}
	ref := func(file string) [][]byte { return pcapRecords(t, run(t, "tcpdump", "-r", file, "-w", "-", "icmp")) }
	for _, c := range []struct {
		port, dir, ref string
	}{
		{"p0", "in", refIn0},   // A's requests as fwd received them
		{"p1", "out", refOutB}, // the same, rewritten, as B received them
		{"p1", "in", refIn1},   // B's replies as fwd received them
		{"p0", "out", refOutA}, // and as A received them
	} {
		got, want := slice("--port", c.port, "--direction", c.dir, "icmp"), ref(c.ref)
		if len(want) != 5 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("--port %s --direction %s: %d packets, tcpdump on the link %d (want 5 the same)", c.port, c.dir, len(got), len(want))
		}
	}
	if in, out := slice("--direction", "in", "icmp"), slice("--direction", "out", "icmp"); len(in) != 10 || len(out) != 10 {
		t.Errorf("--direction in: %d, out: %d, want 10 each", len(in), len(out))
	}
	if n := len(slice("--rule", "1", "icmp")); n != 20 {
		t.Errorf("--rule 1: %d packets, want 20", n)
	}
	if n := len(slice("--rule", "2")); n != 0 {
		t.Errorf("--rule 2: %d packets, want none", n)
	}
	// pcapng: the two ports' interfaces, directions in epb_flags.
	ng := filepath.Join(t.TempDir(), "both.pcapng")
	run(t, bin("fmslice"), "--config", cfg, "--store", store, "--from", "0", "--to", "now", "-q", "--format", "pcapng", "-w", ng, "icmp")
	fields := run(t, "tshark", "-r", ng, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.packet_flags_direction", "-e", "frame.comment")
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimRight(string(fields), "\n"), "\n") {
		count[l]++
	}
	want := map[string]int{
		"p0\t0x00000001\tport=p0 dir=in rule=1":  5,
		"p0\t0x00000002\tport=p0 dir=out rule=1": 5,
		"p1\t0x00000001\tport=p1 dir=in rule=1":  5,
		"p1\t0x00000002\tport=p1 dir=out rule=1": 5,
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("tshark on the pcapng: %v, want %v", count, want)
	}
	// fmslice flows --by-origin: each side's ICMP flow, once per port and
	// direction.
	var rows []struct {
		A, B        string
		CapturePort string `json:"capture_port"`
		Direction   string
		Packets     int
	}
	js := run(t, bin("fmslice"), "flows", "--config", cfg, "--store", store, "--from", "0", "--to", "now", "-q", "--by-origin", "--json", "icmp")
	if err := json.Unmarshal(js, &rows); err != nil {
		t.Fatalf("flows --by-origin --json: %v\n%s", err, js)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.A+"-"+r.B+" "+r.CapturePort+" "+r.Direction] += r.Packets
	}
	wantFlows := map[string]int{
		"198.18.1.1-198.18.1.2 p0 in": 5, "198.18.1.1-198.18.1.2 p0 out": 5,
		"198.18.2.1-198.18.2.2 p1 in": 5, "198.18.2.1-198.18.2.2 p1 out": 5,
	}
	if fmt.Sprint(got) != fmt.Sprint(wantFlows) {
		t.Errorf("flows --by-origin: %v, want %v", got, wantFlows)
	}
}
