package fwd

// The forwarding table is immutable once built. An edit builds a whole new
// table and swaps the pointer (atomic.Pointer in Datapath): the datapath
// loads the pointer once per burst, so a burst is handled entirely by one
// table, traffic never pauses, and nothing is locked on the hot path.
//
// Lookup is an open-addressed hash over (input port, destination, source):
// each rule contributes two keys, its forward key (In, Local, Peer) for
// A's packets and its reverse key (Out, OutLocal, Target) for B's replies.

import (
	"encoding/binary"
	"net/netip"
)

// direction of a packet through a rule.
const (
	dirForward = 0 // A → X arriving on In, leaves Y → B on Out
	dirReverse = 1 // B → Y arriving on Out, leaves X → A on In
)

// crule is a rule compiled for the datapath. Per direction d it holds the
// port the packet leaves on and the addresses it leaves with.
type crule struct {
	idx  int32 // index in table.rules
	id   uint32
	mode Mode
	snap uint32
	// ipOptions: forward IPv4 packets with options other than a source
	// route (ip_options: pass); by default they are dropped and counted.
	ipOptions bool
	// route: a route (route.go): forwarded without rewriting, direction 0 only.
	route   bool
	outPort [2]uint8
	newSrc  [2]uint32 // d=0: Y, d=1: X (IPv4 rules)
	newDst  [2]uint32 // d=0: B, d=1: A
	v6      bool
	newSrc6 [2][16]byte // the same for IPv6 rules
	newDst6 [2][16]byte
	// nextHop is the neighbor to send to per direction: the destination,
	// or the port's gateway when the destination is off the subnet.
	nextHop [2]netip.Addr
}

// key6 is the IPv6 lookup key. IPv6 rules are looked up in a Go map: the
// 33-byte key costs a hash of its own, which IPv4's packed keys avoid.
type key6 struct {
	port     uint8
	dst, src [16]byte
}

type val6 struct {
	idx int32
	dir uint8
}

type tslot struct {
	k1  uint64 // port<<32 | dst
	k2  uint32 // src
	idx int32  // rule index + 1; 0 = empty
	dir uint8
}

type table struct {
	rules   []crule
	slots   []tslot
	mask    uint32
	locals  [][]uint32 // per port: local IPv4 addresses
	locals6 [][][16]byte
	map6    map[key6]val6
	src     []Rule   // the rules as checked, for listing
	routes  []rroute // longest prefix first (route.go)
	routes6 []rroute // IPv6 routes, longest prefix first
	// appl and capRule, per port: an appliance port's role settings (nil:
	// none) and the id and snap its tunnels' inner packets are captured
	// with. In the table, so that fmctl ports set-capture|set-vni reach
	// the poll goroutine by the same swap as rule edits.
	appl    []*Appliance
	capRule []crule
}

func ip4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr4(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}

func hashKey(k1 uint64, k2 uint32) uint32 {
	h := (k1 ^ uint64(k2)<<17 ^ uint64(k2)) * 0x9E3779B97F4A7C15
	return uint32(h >> 32)
}

// buildTable compiles checked rules (see Config.check) for the ports.
func buildTable(ports []Port, rules []Rule) *table {
	t := &table{src: rules, locals: make([][]uint32, len(ports)), locals6: make([][][16]byte, len(ports)), map6: map[key6]val6{},
		appl: make([]*Appliance, len(ports)), capRule: make([]crule, len(ports))}
	for i, p := range ports {
		if a := p.Appliance; a != nil {
			t.appl[i] = a
			t.capRule[i] = crule{id: a.Rule, snap: a.Snap, mode: ModeIngress}
		}
		for _, pf := range p.Prefixes {
			if pf.Addr().Is4() {
				t.locals[i] = append(t.locals[i], ip4(pf.Addr()))
			} else {
				t.locals6[i] = append(t.locals6[i], pf.Addr().As16())
			}
		}
	}
	n := 8
	for n < 4*len(rules) { // load factor ≤ 1/2 with two keys per rule
		n *= 2
	}
	t.slots = make([]tslot, n)
	t.mask = uint32(n - 1)
	for i, r := range rules {
		nh := func(port int, dst netip.Addr) netip.Addr {
			p := &ports[port]
			if gw := p.gateway(dst.Is6()); !p.onLink(dst) && gw.IsValid() {
				return gw
			}
			return dst
		}
		c := crule{
			idx: int32(i), id: r.ID, mode: r.Mode, snap: r.Snap, ipOptions: r.IPOptions,
			outPort: [2]uint8{uint8(r.Out), uint8(r.In)},
			nextHop: [2]netip.Addr{nh(r.Out, r.Target), nh(r.In, r.Peer)},
		}
		if r.Local.Is6() {
			c.v6 = true
			c.newSrc6 = [2][16]byte{r.OutLocal.As16(), r.Local.As16()}
			c.newDst6 = [2][16]byte{r.Target.As16(), r.Peer.As16()}
			t.rules = append(t.rules, c)
			t.map6[key6{uint8(r.In), r.Local.As16(), r.Peer.As16()}] = val6{int32(i), dirForward}
			t.map6[key6{uint8(r.Out), r.OutLocal.As16(), r.Target.As16()}] = val6{int32(i), dirReverse}
			continue
		}
		c.newSrc = [2]uint32{ip4(r.OutLocal), ip4(r.Local)}
		c.newDst = [2]uint32{ip4(r.Target), ip4(r.Peer)}
		t.rules = append(t.rules, c)
		t.insert(uint8(r.In), ip4(r.Local), ip4(r.Peer), int32(i), dirForward)
		t.insert(uint8(r.Out), ip4(r.OutLocal), ip4(r.Target), int32(i), dirReverse)
	}
	return t
}

func (t *table) insert(port uint8, dst, src uint32, idx int32, dir uint8) {
	k1 := uint64(port)<<32 | uint64(dst)
	for h := hashKey(k1, src); ; h++ {
		s := &t.slots[h&t.mask]
		if s.idx == 0 {
			*s = tslot{k1: k1, k2: src, idx: idx + 1, dir: dir}
			return
		}
	}
}

// lookup finds the rule and direction for a packet from src to dst arriving
// on port. ok is false when no rule matches.
func (t *table) lookup(port uint8, dst, src uint32) (r *crule, dir uint8, ok bool) {
	k1 := uint64(port)<<32 | uint64(dst)
	for h := hashKey(k1, src); ; h++ {
		s := &t.slots[h&t.mask]
		if s.idx == 0 {
			return nil, 0, false
		}
		if s.k1 == k1 && s.k2 == src {
			return &t.rules[s.idx-1], s.dir, true
		}
	}
}

// lookup6 is lookup for IPv6.
func (t *table) lookup6(port uint8, dst, src []byte) (r *crule, dir uint8, ok bool) {
	v, ok := t.map6[key6{port, [16]byte(dst), [16]byte(src)}]
	if !ok {
		return nil, 0, false
	}
	return &t.rules[v.idx], v.dir, true
}

func (t *table) isLocal6(port uint8, a []byte) bool {
	for i := range t.locals6[port] {
		if [16]byte(a) == t.locals6[port][i] {
			return true
		}
	}
	return false
}

// isLocal says whether a is one of port's local addresses.
func (t *table) isLocal(port uint8, a uint32) bool {
	for _, l := range t.locals[port] {
		if l == a {
			return true
		}
	}
	return false
}
