package segment

// The flow table: per segment, one entry per bidirectional flow (the
// canonical 5-tuple plus VLAN: the endpoint with the lower address and
// port is A), with packets, bytes, first and last time, the TCP flags seen
// and the groups it appears in. fmslice flows answers top-talker questions
// from it alone, never touching packets; non-first fragments, which carry
// no ports, count in a flow with ports 0.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
	"sort"
	"unsafe"

	"github.com/fmcap/fmcap/internal/prefetch"
)

// FlowKey is the canonical bidirectional key.
type FlowKey struct {
	Kind         Kind
	Ports        bool // the packets carried ports (TCP, UDP, SCTP, not later fragments)
	Proto        uint8
	VLAN         uint16
	A, B         [16]byte
	APort, BPort uint16
}

// Flow is one flow's figures in a segment (or, merged, in a range).
type Flow struct {
	FlowKey
	Flags       uint8
	Packets     uint64
	Bytes       uint64
	First, Last int64
	Groups      []uint32

	// While building: the indexes of its addresses and ports (-1: none),
	// resolved once when the flow is first seen, and the last group it was
	// added to, +1: a packet of a known flow costs one lookup, not five,
	// and one (flow, group) pair when the group is new to the flow, from
	// which Encode derives the addresses' and ports' lists.
	ai, bi, api, bpi int32
	lastG            uint32
	pb, pi           int32    // where its current (flow, group) count is in flowCnt
	cnt              []uint64 // Encode: per group of Groups, packets << 40 | bytes
	// Its origins (floworigin.go): the first one's here, the others' in
	// a chain in the builder's fo.
	o0              int32 // its first packet's origin, index + 1 (0: not known)
	o0Flags         uint8
	o0First, o0Last int64
	oHead           int32 // the first entry of its other origins in fo, + 1 (0: none)
}

// flowKey is p's canonical flow key.
func flowKey(p *Packet) FlowKey {
	k := FlowKey{Kind: p.Kind, Proto: p.Proto, VLAN: p.VLAN, A: p.Src, B: p.Dst}
	if p.Ports {
		k.APort, k.BPort, k.Ports = p.SPort, p.DPort, true
	}
	if c := bytes.Compare(k.A[:], k.B[:]); c > 0 || c == 0 && k.APort > k.BPort {
		k.A, k.B, k.APort, k.BPort = k.B, k.A, k.BPort, k.APort
	}
	return k
}

// Prefetch readies a batch for Add: each packet's flow key and hash, and
// the table slot, then the flow entry, they lead to, prefetched. With
// many flows interleaved every packet's entry is a cache miss; Add takes
// them one after another, here a batch's misses overlap (16 packets: about
// two miss latencies instead of 32). Add works the same without it.
func (b *Builder) Prefetch(ps []*Packet) {
	for _, p := range ps {
		if p.Addrs && (p.Kind == IPv4 || p.Kind == IPv6) {
			p.key = flowKey(p)
			p.hash, p.keyed = p.key.hash(), true
		}
	}
	if len(b.flowTab.slots) == 0 {
		return
	}
	// The slots first, then (the slots having arrived meanwhile) the
	// entries they point to.
	mask := uint64(len(b.flowTab.slots) - 1)
	for _, p := range ps {
		if p.keyed {
			prefetch.Lines(unsafe.Pointer(&b.flowTab.slots[p.hash&mask]), 8)
		}
	}
	for _, p := range ps {
		if p.keyed {
			if s := b.flowTab.slots[p.hash&mask]; s != 0 && uint32(s>>32) == uint32(p.hash>>32) {
				prefetch.Lines(unsafe.Pointer(&b.flows[uint32(s)-1]), unsafe.Sizeof(Flow{}))
			}
		}
	}
}

// KeyOf is the flow a decoded packet counts in, exactly as Builder.Add
// counts it (ok is false for a packet in no flow: not IP, or its addresses
// cut off), and the TCP flags it adds to the flow. fmslice flows counts the
// packets the index cannot answer for with it, so that its figures and the
// index's add up.
func KeyOf(p *Packet) (k FlowKey, flags uint8, ok bool) {
	if p.Kind != IPv4 && p.Kind != IPv6 || !p.Addrs {
		return FlowKey{}, 0, false
	}
	if p.Proto == 6 && p.Ports {
		flags = p.TCPFlags
	}
	return flowKey(p), flags, true
}

// flow counts p in its flow, and at origin oi (floworigin.go).
func (b *Builder) flow(g uint32, ts int64, p *Packet, oi int32) {
	if p.Kind != IPv4 && p.Kind != IPv6 {
		return
	}
	var k FlowKey
	var h uint64
	if p.keyed {
		k, h = p.key, p.hash
	} else {
		k = flowKey(p)
	}
	i := b.lastFlow // packets come in bursts of one flow
	if i < 0 || b.flows[i].FlowKey != k {
		if !p.keyed {
			h = k.hash()
		}
		var ok bool
		if i, ok = b.flowTab.find(&k, h, b.flows); !ok {
			i = int32(len(b.flows))
			b.flowTab.insert(h, i, b.flows)
			nf := Flow{FlowKey: k, First: ts, Last: ts, api: -1, bpi: -1, o0: oi, o0First: ts, o0Last: ts}
			nf.ai, nf.bi = b.addrIndex(0, &k.A), b.addrIndex(1, &k.B)
			if k.Ports {
				nf.api, nf.bpi = b.portIndex(k.APort), b.portIndex(k.BPort)
			}
			b.flows = append(b.flows, nf)
		}
		b.lastFlow = i
	}
	f := &b.flows[i]
	f.Packets++
	f.Bytes += uint64(p.Wire)
	f.First, f.Last = min(f.First, ts), max(f.Last, ts)
	var flags uint8
	if p.Proto == 6 && p.Ports {
		flags = p.TCPFlags
	}
	f.Flags |= flags
	b.flowOrigin(f, oi, ts, p.Wire, flags)
	if f.lastG != g+1 {
		f.lastG = g + 1
		b.flowSeen.add(uint64(i)<<32 | uint64(g)) // its addresses' and ports' groups too: see termLists
		b.flowCnt.add(0)
		f.pb = int32(len(b.flowCnt.blocks) - 1)
		f.pi = int32(len(b.flowCnt.blocks[f.pb]) - 1)
	}
	b.flowCnt.blocks[f.pb][f.pi] += 1<<cntShift | uint64(p.Wire)
}

func less(a, b *FlowKey) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Ports != b.Ports {
		return b.Ports
	}
	if c := bytes.Compare(a.A[:], b.A[:]); c != 0 {
		return c < 0
	}
	if c := bytes.Compare(a.B[:], b.B[:]); c != 0 {
		return c < 0
	}
	if a.Proto != b.Proto {
		return a.Proto < b.Proto
	}
	if a.APort != b.APort {
		return a.APort < b.APort
	}
	if a.BPort != b.BPort {
		return a.BPort < b.BPort
	}
	return a.VLAN < b.VLAN
}

// sortedFlows is the flows in the file's order, each with its groups and
// their counts.
func (b *Builder) sortedFlows(groups [][]uint32, cnts [][]uint64) []*Flow {
	fl := make([]*Flow, len(b.flows))
	for i := range b.flows {
		fl[i] = &b.flows[i]
		fl[i].Groups, fl[i].cnt = groups[i], cnts[i]
	}
	sort.Slice(fl, func(i, j int) bool { return less(&fl[i].FlowKey, &fl[j].FlowKey) })
	return fl
}

func (b *Builder) appendFlows(out []byte, fl []*Flow) []byte {
	le := binary.LittleEndian
	out = binary.AppendUvarint(out, uint64(len(fl)))
	for _, f := range fl {
		kb := byte(f.Kind)
		if f.Ports {
			kb |= 0x80
		}
		out = append(out, kb, f.Proto)
		out = le.AppendUint16(out, f.VLAN)
		if f.Kind == IPv4 { // the last 4 bytes of the mapped form (decode4 maps every IPv4 address)
			out = append(out, f.A[12:]...)
			out = append(out, f.B[12:]...)
		} else {
			out = append(out, f.A[:]...)
			out = append(out, f.B[:]...)
		}
		out = le.AppendUint16(out, f.APort)
		out = le.AppendUint16(out, f.BPort)
		out = append(out, f.Flags)
		out = binary.AppendUvarint(out, f.Packets)
		out = binary.AppendUvarint(out, f.Bytes)
		out = binary.AppendUvarint(out, uint64(f.First-b.seg.MinTS))
		out = binary.AppendUvarint(out, uint64(f.Last-f.First))
		out = appendGroups(out, f.Groups, uint32(len(b.gmin)))
	}
	return out
}

// minFlowEntry is the fewest bytes a flow entry takes (IPv4, one-byte
// uvarints, an empty group list): a count claiming more flows than that
// allows is refused before anything is allocated for them.
const minFlowEntry = 4 + 8 + 5 + 4 + 1 // key bytes, IPv4 addresses, ports and flags, four 1-byte uvarints, an empty group list

func decodeFlows(p []byte, ng uint64, minTS int64) ([]Flow, []byte, error) {
	bad := func(what string) ([]Flow, []byte, error) {
		return nil, nil, fmt.Errorf("%w: flows: %s", ErrCorrupt, what)
	}
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p))/minFlowEntry {
		return bad("count")
	}
	p = p[k:]
	out := make([]Flow, n)
	for i := range out {
		f := &out[i]
		var what string
		if p, what = flowHead(p, f, minTS); what != "" {
			return bad(what)
		}
		if ngr, k := binary.Uvarint(p); k > 0 && ngr <= ng && ngr <= 8*uint64(len(p)) {
			f.Groups = make([]uint32, 0, ngr)
		}
		k := decodeGroups(p, uint32(ng), func(g uint32) { f.Groups = append(f.Groups, g) })
		if k < 0 {
			return bad("groups")
		}
		p = p[k:]
	}
	return out, p, nil
}

// flowHead decodes a flow entry up to its group list into f; what says
// which field is malformed ("" if none).
func flowHead(p []byte, f *Flow, minTS int64) (_ []byte, what string) {
	le := binary.LittleEndian
	if len(p) < 4 {
		return p, "entry"
	}
	f.Kind, f.Ports, f.Proto, f.VLAN = Kind(p[0]&0x7f), p[0]&0x80 != 0, p[1], le.Uint16(p[2:])
	p = p[4:]
	if f.Kind == IPv4 {
		if len(p) < 13 {
			return p, "entry"
		}
		f.A, f.B = Map4([4]byte(p[0:4])), Map4([4]byte(p[4:8]))
		p = p[8:]
	} else {
		if len(p) < 37 {
			return p, "entry"
		}
		copy(f.A[:], p[0:16])
		copy(f.B[:], p[16:32])
		p = p[32:]
	}
	f.APort, f.BPort, f.Flags = le.Uint16(p[0:]), le.Uint16(p[2:]), p[4]
	p = p[5:]
	var ok bool
	if f.Packets, p, ok = uvarint(p); !ok {
		return p, "packets"
	}
	if f.Bytes, p, ok = uvarint(p); !ok {
		return p, "bytes"
	}
	var first, dur uint64
	if first, p, ok = uvarint(p); !ok {
		return p, "first time"
	}
	if dur, p, ok = uvarint(p); !ok {
		return p, "last time"
	}
	f.First = minTS + int64(first)
	f.Last = f.First + int64(dur)
	return p, ""
}

// FlowTableBytes is the size of the flow table (what FlowGroups reads).
func (s *Segment) FlowTableBytes() int { return len(s.flows) }

// FlowGroups sets in out the groups of the flows for which match is true,
// decoding only those flows' group lists (the others are stepped over by
// their size): what a plan needs of the flow table, without building it.
// Damage: as FlowTable.
func (s *Segment) FlowGroups(match func(k *FlowKey) bool, out Bits) error {
	if s.err != nil {
		return s.err
	}
	if crc32.Checksum(s.flows, crcTable) != s.flowSum {
		s.fail("flows")
		return s.err
	}
	bad := func(what string) error { return fmt.Errorf("%w: flows: %s", ErrCorrupt, what) }
	p := s.flows
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p))/minFlowEntry {
		return bad("count")
	}
	p = p[k:]
	var f Flow
	for i := uint64(0); i < n; i++ {
		var what string
		if p, what = flowHead(p, &f, s.MinTS); what != "" {
			return bad(what)
		}
		var k int
		if match(&f.FlowKey) {
			k = decodeGroups(p, s.ng, func(g uint32) { out.Set(g) })
		} else {
			k = skipGroups(p, s.ng)
		}
		if k < 0 {
			return bad("groups")
		}
		p = p[k:]
	}
	if len(p) != 0 {
		return bad("bytes after the flows")
	}
	return nil
}

func uvarint(p []byte) (uint64, []byte, bool) {
	v, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, p, false
	}
	return v, p[k:], true
}

// AddrString prints an index address (IPv4 mapped ones as IPv4).
func AddrString(a [16]byte) string { return netip.AddrFrom16(a).Unmap().String() }

// hash mixes the key's 40 bytes, a word at a time.
func (k *FlowKey) hash() uint64 {
	le := binary.LittleEndian
	var ports uint64
	if k.Ports {
		ports = 1
	}
	w := [5]uint64{
		le.Uint64(k.A[:8]), le.Uint64(k.A[8:]), le.Uint64(k.B[:8]), le.Uint64(k.B[8:]),
		uint64(k.Kind) | ports<<8 | uint64(k.Proto)<<16 | uint64(k.VLAN)<<24 | uint64(k.APort)<<40 | uint64(k.BPort)<<56 ^ uint64(k.BPort)>>8,
	}
	h := uint64(0x243F6A8885A308D3)
	for _, x := range w {
		h = (h ^ x) * 0x9E3779B97F4A7C15
		h ^= h >> 29
	}
	return h
}

// flowTable maps a flow key to its index in the builder's flows: open
// addressing over 8-byte slots (the hash's high 32 bits and the index + 1),
// half full at most. The slots of 100 000 flows take 2 MiB and mostly stay
// in cache, where a Go map of 40-byte keys spread over four times that; the
// key itself is compared in the flow's own entry, which the packet updates
// anyway.
type flowTable struct {
	slots []uint64
	n     int
}

func (t *flowTable) find(k *FlowKey, h uint64, flows []Flow) (int32, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return 0, false
		}
		if uint32(s>>32) == uint32(h>>32) && flows[uint32(s)-1].FlowKey == *k {
			return int32(uint32(s) - 1), true
		}
	}
}

// insert adds flow idx (not present) with hash h; flows holds the others
// (for rehashing when the table grows).
func (t *flowTable) insert(h uint64, idx int32, flows []Flow) {
	if 2*(t.n+1) > len(t.slots) {
		old := t.slots
		t.slots = make([]uint64, max(1024, 2*len(old)))
		t.n = 0
		for _, s := range old {
			if s != 0 {
				f := &flows[uint32(s)-1]
				t.put(f.FlowKey.hash(), uint32(s)-1)
			}
		}
	}
	t.put(h, uint32(idx))
}

func (t *flowTable) put(h uint64, idx uint32) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = h>>32<<32 | uint64(idx+1)
	t.n++
}
