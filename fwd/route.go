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
// their own route. IPv4 only.
//
//	fwd:
//	  routes:
//	    - {id: 20, prefix: 198.18.50.0/24, via: 198.18.2.254, out: p1}   # from any port
//	    - {id: 21, prefix: 0.0.0.0/0, via: 198.18.1.254, out: p0, in: [p1], capture: ingress}

import (
	"fmt"
	"net/netip"
	"sort"
)

// RouteConfig is one route as written in the file.
type RouteConfig struct {
	ID      uint32   `yaml:"id"`
	Prefix  string   `yaml:"prefix"`
	Via     string   `yaml:"via"`
	Out     string   `yaml:"out"`
	In      []string `yaml:"in"`
	Capture string   `yaml:"capture"`
	Snap    uint32   `yaml:"snap"`
}

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
// index), its prefix, and the ports it takes packets from.
type rroute struct {
	net, mask uint32
	bits      int
	idx       int32
	in        [4]uint64 // bit per port
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
		if err != nil || !pf.Addr().Is4() {
			return nil, i, "prefix", fmt.Errorf("%sprefix %q: an IPv4 prefix, e.g. 198.18.50.0/24 or 0.0.0.0/0 (IPv6 routes are not done)", pre, rc.Prefix)
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
		if err != nil || !via.Is4() {
			return nil, i, "via", fmt.Errorf("%svia %q: the next hop's IPv4 address", pre, rc.Via)
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
		rr := rroute{net: ip4(r.Prefix.Addr()), bits: r.Prefix.Bits(), idx: c.idx}
		if rr.bits > 0 {
			rr.mask = ^uint32(0) << (32 - rr.bits)
		}
		if r.In == nil {
			rr.in = [4]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}
		}
		for _, p := range r.In {
			rr.in[p/64] |= 1 << (p % 64)
		}
		t.rules = append(t.rules, c)
		t.routes = append(t.routes, rr)
	}
	sort.SliceStable(t.routes, func(a, b int) bool { return t.routes[a].bits > t.routes[b].bits })
	return t
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
