package fwd

// Routes: the transparent-router role. A packet addressed to fwd's MAC but
// to none of its addresses and no rule's, whose destination falls in a
// route's prefix (the longest that matches, among the routes that take
// packets from the port it came in on), is forwarded to the route's next
// hop out of the route's port with its addresses untouched: TTL decremented
// (≤ 1: dropped and counted), IPv4 options and offloads as for rules, ICMP
// "too big" from the receiving port's address, captured per the route's
// mode (ingress, egress, both, none; inline is egress: nothing is
// rewritten). This is how an AWS appliance sits in a VPC's ingress or
// middlebox routing (its ENI's source/destination check off): the route
// tables send packets for others to the ENI, and the appliance sends them
// on to the VPC router. A route is a rule of the table (its id names its
// counters in `fmctl stats`), without a reverse direction: replies take
// their own route. IPv6 routes are the same with the hop limit (no
// header checksum) and NDP for the next hop (which must be of the
// prefix's family); a packet from or to a link-local address, or to a
// multicast one, is never routed (RFC 4291 2.5.6: link-local scope ends at
// the link).
//
//	fwd:
//	  routes:
//	    - {id: 20, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}   # from any port
//	    - {id: 21, prefix: 0.0.0.0/0, via: 198.18.1.254, out: p0, in: [p1], capture: ingress}
//	    - {id: 22, prefix: "2001:db8:50::/48", via: "2001:db8:2::fe", out: p1}

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/fmcap/fmcap/internal/ctl"
)

// RouteConfig is one route as written in the file and on the control
// socket (fmctl routes).
type RouteConfig = ctl.Route

// Route is a checked route.
type Route struct {
	ID     uint32
	Prefix netip.Prefix
	Via    netip.Addr
	Out    int
	In     []int // nil: every port
	Mode   Mode
	Snap   uint32
}

// rroute is a route compiled for the datapath: the rule it is (table.rules
// index), its prefix, and the ports it takes packets from. An IPv4 route
// has its prefix in net and mask, an IPv6 one in net6 and mask6 (the
// address's two big-endian halves).
type rroute struct {
	net, mask   uint32
	net6, mask6 [2]uint64
	bits        int
	idx         int32
	in          [4]uint64 // bit per port
}

// checkRoutes checks the routes against the ports and the ids already
// taken (rules', appliances'). On error: the route's index and the key.
func checkRoutes(list []RouteConfig, ports []Port, taken map[uint32]string) ([]Route, int, string, error) {
	byName := map[string]int{}
	for i, p := range ports {
		byName[p.Name] = i
	}
	var out []Route
	for i, rc := range list {
		pre := fmt.Sprintf("route %d: ", rc.ID)
		if rc.ID == 0 {
			return nil, i, "id", fmt.Errorf("route without an id: add id: N (1 or more; it names the route's counters)")
		}
		if what, dup := taken[rc.ID]; dup {
			return nil, i, "id", fmt.Errorf("%sid %d is %s's already", pre, rc.ID, what)
		}
		taken[rc.ID] = fmt.Sprintf("route %d", rc.ID)
		r := Route{ID: rc.ID, Snap: rc.Snap}
		pf, err := netip.ParsePrefix(rc.Prefix)
		if err != nil || pf.Addr().Is4In6() || pf.Addr().Zone() != "" {
			return nil, i, "prefix", fmt.Errorf("%sprefix %q: an IPv4 or IPv6 prefix, e.g. 198.18.50.0/24, 0.0.0.0/0 or 2001:db8::/32", pre, rc.Prefix)
		}
		if pf != pf.Masked() {
			return nil, i, "prefix", fmt.Errorf("%sprefix %s has host bits set: %s?", pre, pf, pf.Masked())
		}
		r.Prefix = pf
		o, ok := byName[rc.Out]
		if !ok {
			return nil, i, "out", fmt.Errorf("%sout %q: no such port", pre, rc.Out)
		}
		if ports[o].Appliance != nil {
			return nil, i, "out", fmt.Errorf("%sport %q is a %s appliance port", pre, rc.Out, ports[o].Appliance.Role)
		}
		r.Out = o
		via, err := netip.ParseAddr(rc.Via)
		if err != nil || via.Is4() != pf.Addr().Is4() || via.Is4In6() || via.Zone() != "" {
			fam := "IPv4"
			if pf.Addr().Is6() {
				fam = "IPv6"
			}
			return nil, i, "via", fmt.Errorf("%svia %q: the next hop's %s address (the prefix's family)", pre, rc.Via, fam)
		}
		if !ports[o].onLink(via) || ports[o].isLocal(via) {
			return nil, i, "via", fmt.Errorf("%svia %s is not a neighbor on port %q's subnets", pre, via, rc.Out)
		}
		r.Via = via
		for _, n := range rc.In {
			p, ok := byName[n]
			if !ok {
				return nil, i, "in", fmt.Errorf("%sin %q: no such port", pre, n)
			}
			if ports[p].Appliance != nil {
				return nil, i, "in", fmt.Errorf("%sport %q is a %s appliance port", pre, n, ports[p].Appliance.Role)
			}
			r.In = append(r.In, p)
		}
		if rc.Capture == "" {
			rc.Capture = "both"
		}
		if r.Mode, err = ParseMode(rc.Capture); err != nil {
			return nil, i, "capture", fmt.Errorf("%s%v", pre, err)
		}
		if r.Snap == 0 {
			r.Snap = defaultSnap
		}
		if r.Snap < 14 || r.Snap > 65535 {
			return nil, i, "snap", fmt.Errorf("%ssnap %d: use 14..65535", pre, r.Snap)
		}
		for _, o := range out {
			if o.Prefix == pf && inOverlap(o.In, r.In) {
				return nil, i, "prefix", fmt.Errorf("%sprefix %s is route %d's already, from the same ports", pre, pf, o.ID)
			}
		}
		out = append(out, r)
	}
	return out, 0, "", nil
}

// inOverlap says whether two routes' in: lists share a port (nil: every
// port).
func inOverlap(a, b []int) bool {
	if a == nil || b == nil {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// withRoutes adds the routes to t as rules of its own (their counters and
// next hops are kept as rules' are), looked up by longest prefix.
func (t *table) withRoutes(routes []Route) *table {
	for _, r := range routes {
		c := crule{
			idx: int32(len(t.rules)), id: r.ID, mode: r.Mode, snap: r.Snap, route: true,
			outPort: [2]uint8{uint8(r.Out), uint8(r.Out)},
			nextHop: [2]netip.Addr{r.Via, r.Via},
		}
		rr := rroute{bits: r.Prefix.Bits(), idx: c.idx}
		if r.In == nil {
			rr.in = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
		}
		for _, p := range r.In {
			rr.in[p/64] |= 1 << (p % 64)
		}
		t.rules = append(t.rules, c)
		if r.Prefix.Addr().Is4() {
			rr.net = ip4(r.Prefix.Addr())
			if rr.bits > 0 {
				rr.mask = ^uint32(0) << (32 - rr.bits)
			}
			t.routes = append(t.routes, rr)
			continue
		}
		a := r.Prefix.Addr().As16()
		rr.net6 = [2]uint64{be.Uint64(a[:8]), be.Uint64(a[8:])}
		rr.mask6 = [2]uint64{mask64(rr.bits), mask64(rr.bits - 64)}
		t.routes6 = append(t.routes6, rr)
	}
	for _, l := range [][]rroute{t.routes, t.routes6} {
		sort.SliceStable(l, func(a, b int) bool { return l[a].bits > l[b].bits })
	}
	return t
}

// mask64 is the mask of the first bits bits of 64 (none for bits <= 0).
func mask64(bits int) uint64 {
	switch {
	case bits <= 0:
		return 0
	case bits >= 64:
		return ^uint64(0)
	}
	return ^uint64(0) << (64 - bits)
}

// route6 is the longest-prefix IPv6 route for dst (16 bytes) among those
// taking packets from port in.
func (t *table) route6(in uint8, dst []byte) (*crule, bool) {
	hi, lo := be.Uint64(dst[:8]), be.Uint64(dst[8:16])
	for i := range t.routes6 {
		r := &t.routes6[i]
		if hi&r.mask6[0] == r.net6[0] && lo&r.mask6[1] == r.net6[1] && r.in[in/64]&(1<<(in%64)) != 0 {
			return &t.rules[r.idx], true
		}
	}
	return nil, false
}

// routable6 says whether a packet from src to dst may be routed at all:
// link-local addresses (fe80::/10) stay on their link, multicast (ff00::/8)
// is not forwarded by routes.
func routable6(src, dst []byte) bool {
	ll := func(a []byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }
	return dst[0] != 0xff && !ll(dst) && !ll(src)
}

// isLocalAny6 is isLocalAny for IPv6.
func (t *table) isLocalAny6(a []byte) bool {
	for p := range t.locals6 {
		if t.isLocal6(uint8(p), a) {
			return true
		}
	}
	return false
}

// route is the longest-prefix route for dst among those taking packets
// from port in.
func (t *table) route(in uint8, dst uint32) (*crule, bool) {
	for i := range t.routes {
		r := &t.routes[i]
		if dst&r.mask == r.net && r.in[in/64]&(1<<(in%64)) != 0 {
			return &t.rules[r.idx], true
		}
	}
	return nil, false
}

// isLocalAny says whether a is an IPv4 address of any port (a packet to it
// is fwd's, whichever port it came in on: never routed).
func (t *table) isLocalAny(a uint32) bool {
	for p := range t.locals {
		if t.isLocal(uint8(p), a) {
			return true
		}
	}
	return false
}

// decTTL decrements a routed packet's TTL, with its header checksum
// (RFC 1624). The caller has checked TTL > 1.
func decTTL(f []byte, p *ippkt) {
	ip := p.ip
	oldW := uint16(f[ip+8])<<8 | uint16(p.proto)
	f[ip+8]--
	csumApply(f[ip+10:], csumAdd16(0, oldW, oldW-0x100))
}
