package main

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
	idx     int32 // index in table.rules
	id      uint32
	mode    Mode
	snap    uint32
	outPort [2]uint8
	newSrc  [2]uint32 // d=0: Y, d=1: X
	newDst  [2]uint32 // d=0: B, d=1: A
	// nextHop is the neighbor to send to per direction: the destination,
	// or the port's gateway when the destination is off the subnet.
	nextHop [2]uint32
}

type tslot struct {
	k1  uint64 // port<<32 | dst
	k2  uint32 // src
	idx int32  // rule index + 1; 0 = empty
	dir uint8
}

type table struct {
	rules  []crule
	slots  []tslot
	mask   uint32
	locals [][]uint32 // per port: local addresses
	src    []Rule     // the rules as checked, for listing
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
	t := &table{src: rules, locals: make([][]uint32, len(ports))}
	for i, p := range ports {
		for _, pf := range p.Prefixes {
			t.locals[i] = append(t.locals[i], ip4(pf.Addr()))
		}
	}
	n := 8
	for n < 4*len(rules) { // load factor ≤ 1/2 with two keys per rule
		n *= 2
	}
	t.slots = make([]tslot, n)
	t.mask = uint32(n - 1)
	for i, r := range rules {
		nh := func(port int, dst netip.Addr) uint32 {
			if p := &ports[port]; !p.onLink(dst) && p.Gateway.IsValid() {
				return ip4(p.Gateway)
			}
			return ip4(dst)
		}
		c := crule{
			idx: int32(i), id: r.ID, mode: r.Mode, snap: r.Snap,
			outPort: [2]uint8{uint8(r.Out), uint8(r.In)},
			newSrc:  [2]uint32{ip4(r.OutLocal), ip4(r.Local)},
			newDst:  [2]uint32{ip4(r.Target), ip4(r.Peer)},
			nextHop: [2]uint32{nh(r.Out, r.Target), nh(r.In, r.Peer)},
		}
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

// isLocal says whether a is one of port's local addresses.
func (t *table) isLocal(port uint8, a uint32) bool {
	for _, l := range t.locals[port] {
		if l == a {
			return true
		}
	}
	return false
}
