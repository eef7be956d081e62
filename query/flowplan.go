package query

// Flow-exact plans. The term lists answer per group: "A and B" keeps every
// group holding some A packet and some B packet, even when no packet is
// both. A segment's flow table knows, per flow, its key and its groups:
// the filter's flow part decided on each flow's key keeps only the groups
// of the flows that may match. Packets outside flows (ARP, other
// protocols, frames cut inside a header the index reads) are in no flow:
// their groups are kept wherever the term lists keep them. libpcap still
// decides each packet read.

import (
	"github.com/fmcap/fmcap/store/segment"
)

// ext6 are IPv6 extension header numbers: "ip6 proto N" for one of them
// matches on the first header, which a flow's key does not keep.
func ext6(b byte) bool {
	switch b {
	case 0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254:
		return true
	}
	return false
}

// MayMatchFlow says whether a packet of flow f may match the filter: a
// superset of libpcap's answer for every packet of the flow, whatever the
// plan (src/dst are answered as either end, a negation as "may").
func (p *Plan) MayMatchFlow(f *segment.FlowKey) bool {
	switch p.op {
	case 'a':
		return p.l.MayMatchFlow(f) && p.r.MayMatchFlow(f)
	case 'o':
		return p.l.MayMatchFlow(f) || p.r.MayMatchFlow(f)
	case 'n', '*':
		return true
	case 'T':
		if f.Kind == segment.IPv6 && ext6(p.b) {
			return true
		}
	}
	return p.MatchFlow(f)
}

// hasNot says whether the plan holds a negation (which term lists answer
// as "every group", and an exact plan's flows decide).
func (p *Plan) hasNot() bool {
	switch p.op {
	case 'a', 'o':
		return p.l.hasNot() || p.r.hasNot()
	case 'n':
		return true
	}
	return false
}

// hasAnd says whether the plan holds an and over indexed parts: where term
// lists keep groups in which no packet matches.
func (p *Plan) hasAnd() bool {
	if p == nil {
		return false
	}
	switch p.op {
	case 'a':
		return p.l.Indexed() && p.r.Indexed() || p.l.hasAnd() || p.r.hasAnd()
	case 'o':
		return p.l.hasAnd() || p.r.hasAnd()
	}
	return false
}

// protoSensitive says whether the plan names a protocol or port, which
// libpcap reads from IPv6's first next header.
func (p *Plan) protoSensitive() bool {
	switch p.op {
	case 'a', 'o':
		return p.l.protoSensitive() || p.r.protoSensitive()
	case 'n':
		return p.l.protoSensitive()
	case 'T', 'P', 'R':
		return true
	}
	return false
}

// FlowExact says whether MatchFlow, for a plan from ParseExact, is
// libpcap's answer for every packet of flow f: no VLAN tag (libpcap's
// primitives without "vlan" match no tagged packet), and for IPv6 a plan
// that names no protocol or port.
func (p *Plan) FlowExact(f *segment.FlowKey) bool {
	return f.VLAN == 0 && (f.Kind == segment.IPv4 || f.Kind == segment.IPv6 && !p.protoSensitive())
}

// outsideFlows sets in out the groups holding packets no flow holds: ARP,
// other protocols, and frames cut inside a header the index reads.
func outsideFlows(s *segment.Segment, out segment.Bits) {
	s.PostingsInto(segment.KindKind, []byte{byte(segment.ARP)}, out)
	s.PostingsInto(segment.KindKind, []byte{byte(segment.Other)}, out)
	s.PostingsInto(segment.KindKind, []byte{segment.KeyCut}, out)
}

// minFlowNarrow is the fewest groups the term lists must keep in a segment
// before the flow table is read: below it, reading the flows costs more
// than the frames it could save. A large flow table raises the bar:
// checking and decoding a byte of it costs about twice what decompressing
// a byte of frames does (50 M packets, 20 000 flows: twelve 6 MB tables,
// 50 ms of CPU; the 2 698 frames of 27 KB a host-and-port query reads,
// about 25 ms), so it is read only when the groups kept, at a frame of
// about 32 KiB each, outweigh it: flowNarrowBytes of table a group. That
// query's term lists keep ~225 groups a segment, exactly those holding
// matches, and the tables narrowed nothing.
var minFlowNarrow = 64

const flowNarrowBytes = 16 << 10

// narrowByFlows narrows bits (the term lists' groups for s) to the groups
// of the flows that may match and the groups holding packets outside
// flows. It returns bits unchanged (narrowed false) when the flows cannot
// narrow (no and in the plan, few groups kept) and an error when the flow table is
// damaged (the caller then trusts nothing of the segment).
func (p *Plan) narrowByFlows(s *segment.Segment, bits segment.Bits, exact bool) (_ segment.Bits, narrowed bool, err error) {
	if !p.hasAnd() && !(exact && p.hasNot()) {
		return bits, false, nil
	}
	if !bits.All {
		kept := 0
		bits.Each(s.Groups(), func(int) { kept++ })
		if kept < max(minFlowNarrow, s.FlowTableBytes()/flowNarrowBytes) {
			return bits, false, nil
		}
	}
	out := segment.NewBits(s.Groups())
	outsideFlows(s, out)
	keep := func(k *segment.FlowKey) bool {
		if exact && p.FlowExact(k) {
			return p.MatchFlow(k)
		}
		return p.MayMatchFlow(k)
	}
	if err := s.FlowGroups(keep, out); err != nil {
		return bits, false, err
	}
	if err := s.Err(); err != nil {
		return bits, false, err
	}
	if !bits.All {
		for i := range out.W {
			out.W[i] &= bits.W[i]
		}
	}
	return out, true, nil
}
