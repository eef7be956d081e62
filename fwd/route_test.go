package fwd

import (
	"strings"
	"testing"

	"github.com/fmcap/fmcap/shmring"
)

const routeConfig = testConfig + `  routes:
    - {id: 20, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}
    - {id: 21, prefix: 198.18.50.128/25, via: 198.18.2.2, out: p1, capture: ingress}
    - {id: 22, prefix: 0.0.0.0/0, via: 198.18.1.2, out: p0, in: [p0], capture: none}
`

func newRouteHarness(t *testing.T) *harness {
	t.Helper()
	cfg, ports, rules, err := parseConfig("test.yaml", []byte(routeConfig))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{tx: &sink{}}
	var prod *shmring.Producer
	h.ring, prod, h.cons = testRing(t, 1<<22)
	h.d = NewDatapath(ports, [][6]byte{macP0, macP1}, buildTable(ports, rules).withRoutes(cfg.routes), prod, h.tx)
	h.d.Begin(1e9)
	h.in(0, arpFrame(2, macA, ipA, macP0, ipX))
	h.in(1, arpFrame(2, macB, ipB, macP1, ipY))
	h.in(1, arpFrame(2, macGW, ipGW, macP1, ipY))
	h.tx.sent = nil
	h.drain(t)
	return h
}

// Routed packets keep their addresses, lose one TTL, go to the longest
// prefix's next hop, and are captured per the route's mode.
func TestRoutes(t *testing.T) {
	h := newRouteHarness(t)
	dst := []byte{198, 18, 50, 7}
	f := tcpFrame(macA, macP0, ipA, dst, "routed")
	out, g := h.in(0, f)
	if out != 1 {
		t.Fatalf("routed to port %d: %v", out, h.d.Stats().Drops)
	}
	wantMACs(t, g, macP1, macGW)
	wantAddrs(t, g, ipA, dst)
	checkSums(t, g)
	if g[14+8] != f[14+8]-1 {
		t.Errorf("TTL %d, sent with %d", g[14+8], f[14+8])
	}
	recs := h.drain(t)
	if len(recs) != 2 || recs[0].Dir != shmring.DirIngress || recs[1].Dir != shmring.DirEgress || recs[0].Rule != 20 || recs[1].Port != 1 {
		t.Errorf("route 20 (both) captured %+v", recs)
	}
	// The longer prefix: to B directly, ingress only.
	dst2 := []byte{198, 18, 50, 200}
	if out, g := h.in(0, tcpFrame(macA, macP0, ipA, dst2, "x")); out != 1 || [6]byte(g[0:6]) != macB {
		t.Errorf("/25 route: port %d to %x", out, g[0:6])
	}
	if recs := h.drain(t); len(recs) != 1 || recs[0].Rule != 21 {
		t.Errorf("route 21 (ingress) captured %+v", recs)
	}
	// The default route takes packets from p0 only: one-arm, back to A.
	if out, g := h.in(0, tcpFrame(macA, macP0, ipA, []byte{198, 19, 1, 1}, "x")); out != 0 || [6]byte(g[0:6]) != macA {
		t.Errorf("default route from p0: port %d to %x", out, g[0:6])
	}
	if out, _ := h.in(1, tcpFrame(macB, macP1, ipB, []byte{198, 19, 1, 1}, "x")); out != -1 {
		t.Errorf("default route taken from p1 (in: [p0])")
	}
	// TTL 1: dropped and counted. Rules still win over routes.
	ttl1 := tcpFrame(macA, macP0, ipA, dst, "x")
	ttl1[14+8] = 1
	before := h.d.c.reasons[rTTL]
	if out, _ := h.in(0, ttl1); out != -1 || h.d.c.reasons[rTTL] != before+1 {
		t.Errorf("TTL 1 routed")
	}
	if out, g := h.in(0, tcpFrame(macA, macP0, ipA, ipX, "rule")); out != 1 {
		t.Errorf("rule 1 not forwarded: %d", out)
	} else {
		wantAddrs(t, g, ipY, ipB)
	}
	// fwd's address on the other port is not routed, though 0/0 covers it.
	if out, _ := h.in(0, tcpFrame(macA, macP0, ipA, ipY, "x")); out != -1 {
		t.Errorf("a packet to p1's address routed from p0 to port %d", out)
	}
	// Counters per route id.
	h.d.publish()
	for _, r := range h.d.Stats().Rules {
		if r.ID == 20 && r.FwdPackets != 1 || r.ID == 21 && r.FwdPackets != 1 || r.ID == 22 && r.FwdPackets != 1 {
			t.Errorf("route %d: %d packets", r.ID, r.FwdPackets)
		}
	}
}

func TestRouteConfig(t *testing.T) {
	for _, c := range []struct{ route, want string }{
		{"{id: 1, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}", "is rule 1's already"},
		{"{id: 30, prefix: 198.18.50.1/24, via: 198.18.2.254, out: p1}", "has host bits set"},
		{"{id: 30, prefix: '2001:2::/48', via: 198.18.2.254, out: p1}", "IPv6 routes are not done"},
		{"{id: 30, prefix: 198.18.50.0/24, via: 198.18.9.254, out: p1}", "not a neighbor on port"},
		{"{id: 30, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p9}", "no such port"},
		{"{id: 30, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1, in: [p7]}", "no such port"},
		{"{id: 30, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1, capture: all}", "capture"},
		{"{prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}", "route without an id"},
		{"{id: 30, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1, in: [p0]}\n    - {id: 31, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}", "is route 30's already"},
	} {
		_, _, _, err := parseConfig("t.yaml", []byte(testConfig+"  routes:\n    - "+c.route+"\n"))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "t.yaml:") {
			t.Errorf("%s: got %v, want %q with a line", c.route, err, c.want)
		}
	}
}
