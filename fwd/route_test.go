package fwd

import (
	"net"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/shmring"
)

const routeConfig = testConfig + `  routes:
    - {id: 20, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}
    - {id: 21, prefix: 198.18.50.128/25, via: 198.18.2.2, out: p1, capture: ingress}
    - {id: 22, prefix: 0.0.0.0/0, via: 198.18.1.2, out: p0, in: [p0], capture: none}
    - {id: 23, prefix: "2001:2:50::/48", via: "2001:2:0:2::fe", out: p1}
    - {id: 24, prefix: "2001:2:50:80::/57", via: "2001:2:0:2::2", out: p1, capture: ingress}
    - {id: 25, prefix: "::/0", via: "2001:2:0:1::2", out: p0, in: [p0], capture: none}
`

var ip6GW = net.ParseIP("2001:2:0:2::fe")

func newRouteHarness(t testing.TB) *harness {
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
	h.in(0, naFrame(macA, ip6A, macP0))
	h.in(1, naFrame(macB, ip6B, macP1))
	h.in(1, naFrame(macGW, ip6GW, macP1))
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
		{"{id: 30, prefix: '2001:2::/48', via: 198.18.2.254, out: p1}", "the next hop's IPv6 address"},
		{"{id: 30, prefix: 198.18.50.0/24, via: '2001:2:0:2::fe', out: p1}", "the next hop's IPv4 address"},
		{"{id: 30, prefix: '::ffff:198.18.50.0/120', via: 198.18.2.254, out: p1}", "an IPv4 or IPv6 prefix"},
		{"{id: 30, prefix: '2001:2::1/48', via: '2001:2:0:2::fe', out: p1}", "has host bits set"},
		{"{id: 30, prefix: '2001:2::/48', via: '2001:2:0:9::fe', out: p1}", "not a neighbor on port"},
		{"{id: 30, prefix: '2001:2::/48', via: '2001:2:0:2::1', out: p1}", "not a neighbor on port"},
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

// IPv6 routes: addresses untouched, hop limit one less, the longest
// prefix's next hop found by NDP, captured per the route's mode; never
// for link-local or multicast destinations, nor fwd's own addresses.
func TestRoutes6(t *testing.T) {
	h := newRouteHarness(t)
	dst := net.ParseIP("2001:2:50::7")
	f := tcp6Frame(macA, macP0, ip6A, dst, "routed")
	out, g := h.in(0, f)
	if out != 1 {
		t.Fatalf("routed to port %d: %v", out, h.d.Stats().Drops)
	}
	wantMACs(t, g, macP1, macGW)
	wantAddrs6(t, g, ip6A, dst)
	checkSums(t, g)
	if g[21] != f[21]-1 || len(g) != len(f) || string(g[22:]) != string(f[22:]) {
		t.Errorf("hop limit %d, sent with %d; or more than the hop limit changed", g[21], f[21])
	}
	recs := h.drain(t)
	if len(recs) != 2 || recs[0].Dir != shmring.DirIngress || recs[1].Dir != shmring.DirEgress || recs[0].Rule != 23 || recs[1].Port != 1 ||
		string(recs[0].Data) != string(f) || string(recs[1].Data) != string(g) {
		t.Errorf("route 23 (both) captured %+v", recs)
	}
	// The longer prefix: to B directly, ingress only (UDP too).
	if out, g := h.in(0, udp6Frame(macA, macP0, ip6A, net.ParseIP("2001:2:50:ff::1"), "x")); out != 1 || [6]byte(g[0:6]) != macB {
		t.Errorf("/57 route: port %d to %x", out, g[0:6])
	} else {
		checkSums(t, g)
	}
	if recs := h.drain(t); len(recs) != 1 || recs[0].Rule != 24 {
		t.Errorf("route 24 (ingress) captured %+v", recs)
	}
	// ::/0 takes packets from p0 only: one-arm, back to A.
	if out, g := h.in(0, tcp6Frame(macA, macP0, ip6A, net.ParseIP("2001:99::1"), "x")); out != 0 || [6]byte(g[0:6]) != macA {
		t.Errorf("default route from p0: port %d to %x", out, g[0:6])
	}
	if out, _ := h.in(1, tcp6Frame(macB, macP1, ip6B, net.ParseIP("2001:99::1"), "x")); out != -1 {
		t.Errorf("default route taken from p1 (in: [p0])")
	}
	// Hop limit 1: dropped and counted. Rules still win over routes.
	hl1 := tcp6Frame(macA, macP0, ip6A, dst, "x")
	hl1[21] = 1
	before := h.d.c.reasons[rTTL]
	if out, _ := h.in(0, hl1); out != -1 || h.d.c.reasons[rTTL] != before+1 {
		t.Errorf("hop limit 1 routed")
	}
	if out, g := h.in(0, tcp6Frame(macA, macP0, ip6A, ip6X, "rule")); out != 1 {
		t.Errorf("rule 3 not forwarded: %d", out)
	} else {
		wantAddrs6(t, g, ip6Y, ip6B)
	}
	h.drain(t)
	// Not routed though ::/0 covers them: fwd's address on the other port,
	// link-local destinations and sources, multicast.
	for _, c := range []struct{ src, dst net.IP }{
		{ip6A, ip6Y}, {ip6A, net.ParseIP("fe80::1")}, {net.ParseIP("fe80::2"), net.ParseIP("2001:99::1")}, {ip6A, net.ParseIP("ff0e::1")},
	} {
		before := h.d.c.reasons[rIPv6]
		if out, _ := h.in(0, udp6Frame(macA, macP0, c.src, c.dst, "x")); out != -1 || h.d.c.reasons[rIPv6] != before+1 {
			t.Errorf("%v → %v: routed to port %d, or not counted as %s", c.src, c.dst, out, reasonNames[rIPv6])
		}
	}
	// Counters per route id.
	h.d.publish()
	for _, r := range h.d.Stats().Rules {
		if r.ID == 23 && r.FwdPackets != 1 || r.ID == 24 && r.FwdPackets != 1 || r.ID == 25 && r.FwdPackets != 1 {
			t.Errorf("route %d: %d packets", r.ID, r.FwdPackets)
		}
	}
}
