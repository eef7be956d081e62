package e2e

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRouterRole: fwd as a transparent router between A and B (hosts with
// the kernel's default offloads, each routing the other's subnet through
// fwd): 50 MB of TCP from A to B by a route each way, addresses untouched,
// the transfer and both capture copies (ingress and egress) of A's stream
// equal by SHA-256.
func TestRouterRole(t *testing.T) {
	tp := newTopoWith(t, topoOpts{offloads: true})
	sh(t, "ip", "-n", tp.nsA, "route", "add", "198.18.2.0/24", "via", "198.18.1.1")
	sh(t, "ip", "-n", tp.nsB, "route", "add", "198.18.1.0/24", "via", "198.18.2.1")
	ring := makeRing(t, "512MiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := writeConfig(t, configHead(t, ring, "afpacket", nil)+fmt.Sprintf(`  metrics: ""
  ports:
    - {name: p0, device: %s, addresses: [198.18.1.1/24]}
    - {name: p1, device: %s, addresses: [198.18.2.1/24]}
  routes:
    - {id: 40, prefix: 198.18.2.0/24, via: 198.18.2.2, out: p1, in: [p0]}
    - {id: 41, prefix: 198.18.1.0/24, via: 198.18.1.2, out: p0, in: [p1], capture: none}
`, tp.f0, tp.f1))
	run(t, bin("fwd"), "--check-config", cfg)
	tp.start(tp.nsF, nil, bin("fwd"), "--config", cfg)
	waitControl(t, cfg)
	writer := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", "")
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })

	const size = 50 << 20
	sum := tp.tcpTransferSum(addrB, 5200, size, addrA) // B sees A's own address: nothing rewritten
	s := stats(t, cfg)
	if s.CaptureDrops != 0 {
		t.Fatalf("capture drops %d", s.CaptureDrops)
	}
	var r40, r41 uint64
	for _, r := range s.Rules {
		switch r.ID {
		case 40:
			r40 = r.FwdPackets
		case 41:
			r41 = r.FwdPackets
		}
	}
	if r40 == 0 || r41 == 0 {
		t.Fatalf("routes' counters: 40 %d, 41 %d", r40, r41)
	}
	waitStored(t, ring)
	out := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "tcp port 5200")
	streams := checkSegments(t, "route", out, 5200, offloadMTU)
	// Ingress and egress copies of A's stream: the same addresses, so one
	// stream holding every segment twice (seq-keyed: the copies coincide).
	st := streams[fmt.Sprintf("%s->%s", net.IP(addrA), net.IP(addrB))]
	if st == nil || len(streams) != 1 {
		t.Fatalf("captured streams %v", streams)
	}
	data, err := st.bytes(size)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", sha256.Sum256(data)); got != sum {
		t.Fatalf("captured stream %s, transfer %s", got, sum)
	}
	if recs := len(pcapRecords(t, out)); st.total < 2*size || recs < 2*size/offloadMTU {
		t.Errorf("%d payload bytes in %d records: not both copies of %d bytes", st.total, recs, size)
	}

	// Run-time edits (fmctl routes), each written to the file: route 40
	// stops capturing; removed, A's packets to B are no longer routed;
	// added again, they are.
	ping := func() error {
		return exec.Command("ip", "netns", "exec", tp.nsA, "ping", "-c", "2", "-i", "0.2", "-W", "1", "198.18.2.2").Run()
	}
	before := stats(t, cfg).Captured
	fmctl(t, cfg, "routes", "set-mode", "40", "none")
	if err := ping(); err != nil {
		t.Fatalf("ping through route 40 (capture none): %v", err)
	}
	if c := stats(t, cfg).Captured; c != before {
		t.Errorf("route 40 set to capture none: %d packets captured since", c-before)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "in: [p0], capture: none}") {
		t.Errorf("set-mode not written to the file:\n%s", b)
	}
	fmctl(t, cfg, "routes", "del", "40")
	if err := ping(); err == nil {
		t.Fatal("A reaches B with route 40 deleted")
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), "id: 40") {
		t.Errorf("route 40 still in the file:\n%s", b)
	}
	fmctl(t, cfg, "routes", "add", "--id", "40", "--prefix", "198.18.2.0/24", "--via", "198.18.2.2", "--out", "p1", "--in", "p0")
	if err := ping(); err != nil {
		t.Fatalf("ping with route 40 added again: %v", err)
	}
	run(t, bin("fwd"), "--check-config", cfg) // the file fwd wrote starts fwd
}
