package segment

// Counts (version 6): per group, its packets and bytes; per flow, its
// packets and bytes in each of its groups. A timeline of the whole
// traffic sums the groups' counts; a timeline of a flow filter sums the
// counts of the matching flows in each group: exact at group granularity,
// no packet read.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// cntShift splits a build-time (flow, group) count: packets above, bytes
// below (2^40 bytes is more than any group of 2^24 packets holds on the wire).
const cntShift = 40

// listsCounted turns the pairs into each term's ascending group list:
// lists(p, n)[t] for terms 0..n-1, all in one backing array (a counting
// sort by term, stable, so each term's groups stay in arrival order, which
// is ascending). With c (the flows' pairs), each pair's count (packets,
// bytes) is carried along in the same order; c nil: no counts (lists).
func listsCounted(p, c *pairs, n int) ([][]uint32, [][]uint64) {
	start := make([]int, n+1)
	total := 0
	for _, b := range p.blocks {
		for _, v := range b {
			start[v>>32+1]++
		}
		total += len(b)
	}
	for t := 1; t <= n; t++ {
		start[t] += start[t-1]
	}
	all := make([]uint32, total)
	var allc []uint64
	if c != nil {
		allc = make([]uint64, total)
	}
	at := append([]int(nil), start[:n]...)
	for bi, b := range p.blocks {
		for i, v := range b {
			t := v >> 32
			all[at[t]] = uint32(v)
			if c != nil {
				allc[at[t]] = c.blocks[bi][i]
			}
			at[t]++
		}
	}
	out := make([][]uint32, n)
	var outc [][]uint64
	if c != nil {
		outc = make([][]uint64, n)
	}
	for t := range out {
		out[t] = all[start[t]:start[t+1]:start[t+1]]
		if c != nil {
			outc[t] = allc[start[t]:start[t+1]:start[t+1]]
		}
	}
	return out, outc
}

// appendCounts appends the counts section: the groups', then the flows'
// (fl in the file's order).
func (b *Builder) appendCounts(out []byte, fl []*Flow) []byte {
	start := len(out)
	for g := range b.gpk {
		out = binary.AppendUvarint(out, b.gpk[g])
		out = binary.AppendUvarint(out, b.gby[g])
	}
	out = binary.LittleEndian.AppendUint32(out, sum32(out[start:]))
	for _, f := range fl {
		for _, c := range f.cnt {
			out = binary.AppendUvarint(out, c>>cntShift)
			out = binary.AppendUvarint(out, c&(1<<cntShift-1))
		}
	}
	return out
}

// groupCountsLen is the bytes the groups' counts and their CRC take at the
// start of p (written by appendCounts for ng groups).
func groupCountsLen(p []byte, ng int) int {
	n := 0
	for i := 0; i < 2*ng; i++ {
		_, k := binary.Uvarint(p[n:])
		n += k
	}
	return n + 4
}

// HasCounts says whether the segment holds counts (version 6).
func (s *Segment) HasCounts() bool { return s.counts != nil }

// GroupCounts hands fn each group's packets and bytes, in group order,
// then checks their CRC (which follows them): a timeline without a filter
// reads these few bytes a group, not the flows' counts. It fails (and Err
// says so) when the counts are damaged or absent; fn may then have seen
// figures that must not be trusted.
func (s *Segment) GroupCounts(fn func(g int, pkts, bytes uint64)) error {
	if s.err != nil {
		return s.err
	}
	if s.counts == nil {
		return fmt.Errorf("%s: no counts (a version 5 segment)", s.Name)
	}
	p := s.counts
	for g := 0; g < int(s.ng); g++ {
		var pk, by uint64
		var ok bool
		if pk, by, p, ok = count(p); !ok {
			s.fail("group counts")
			return s.err
		}
		fn(g, pk, by)
	}
	n := len(s.counts) - len(p)
	if len(p) < 4 || binary.LittleEndian.Uint32(p) != crc32.Checksum(s.counts[:n], crcTable) {
		s.fail("group counts")
		return s.err
	}
	s.flowCounts = p[4:]
	return nil
}

// checkFlowCounts finds the flows' counts (after the groups') and checks
// their CRC, once.
func (s *Segment) checkFlowCounts() error {
	if s.flowCounts == nil {
		if err := s.GroupCounts(func(int, uint64, uint64) {}); err != nil {
			return err
		}
	}
	if !s.countsOK {
		if crc32.Checksum(s.flowCounts, crcTable) != s.countSum {
			s.fail("flow counts")
			return s.err
		}
		s.countsOK = true
	}
	return s.err
}

// FlowCounts hands fn, for each flow of table (the segment's FlowTable, in
// its order) and each of its groups, the flow's packets and bytes in that
// group. GroupCounts must have run. Damage: as GroupCounts.
func (s *Segment) FlowCounts(table []Flow, fn func(f int, g uint32, pkts, bytes uint64)) error {
	if err := s.checkFlowCounts(); err != nil {
		return err
	}
	p := s.flowCounts
	for i := range table {
		for _, g := range table[i].Groups {
			var pk, by uint64
			var ok bool
			if pk, by, p, ok = count(p); !ok {
				s.fail("flow counts")
				return s.err
			}
			fn(i, g, pk, by)
		}
	}
	if len(p) != 0 {
		s.fail("bytes after the flow counts")
		return s.err
	}
	return nil
}

// FlowCountsOf walks the flow table and the flows' counts together,
// building neither: pick says, from a flow's key, whether its counts are
// wanted (0: no; any other class is handed back), and fn gets, for each
// group of a wanted flow, the flow's packets and bytes there. The other
// flows' group lists and counts are stepped over. Damage: as GroupCounts.
func (s *Segment) FlowCountsOf(pick func(k *FlowKey) uint8, fn func(class uint8, g uint32, pkts, bytes uint64)) error {
	if err := s.checkFlowCounts(); err != nil {
		return err
	}
	if crc32.Checksum(s.flows, crcTable) != s.flowSum {
		s.fail("flows")
		return s.err
	}
	p, c := s.flows, s.flowCounts
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p))/minFlowEntry {
		s.fail("flows: count")
		return s.err
	}
	p = p[k:]
	var f Flow
	for i := uint64(0); i < n; i++ {
		var what string
		if p, what = flowHead(p, &f, s.MinTS); what != "" {
			s.fail("flows: " + what)
			return s.err
		}
		ng, k := binary.Uvarint(p)
		if k <= 0 {
			s.fail("flows: groups")
			return s.err
		}
		class := pick(&f.FlowKey)
		if class == 0 {
			if k = skipGroups(p, s.ng); k < 0 {
				s.fail("flows: groups")
				return s.err
			}
			p = p[k:]
			for j := uint64(0); j < 2*ng; j++ { // its counts: packets and bytes a group
				var ok bool
				if _, c, ok = uvarint(c); !ok {
					s.fail("flow counts")
					return s.err
				}
			}
			continue
		}
		ok := true
		k = decodeGroups(p, s.ng, func(g uint32) {
			var pk, by uint64
			var ok1, ok2 bool
			pk, c, ok1 = uvarint(c)
			by, c, ok2 = uvarint(c)
			if ok && ok1 && ok2 {
				fn(class, g, pk, by)
			} else {
				ok = false
			}
		})
		if k < 0 || !ok {
			s.fail("flows or flow counts")
			return s.err
		}
		p = p[k:]
	}
	if len(p) != 0 || len(c) != 0 {
		s.fail("bytes after the flows or their counts")
		return s.err
	}
	return nil
}

// count reads one count of the counts section: packets, then bytes, two
// uvarints.
func count(p []byte) (pkts, bytes uint64, rest []byte, ok bool) {
	var ok2 bool
	pkts, p, ok = uvarint(p)
	bytes, p, ok2 = uvarint(p)
	return pkts, bytes, p, ok && ok2
}
