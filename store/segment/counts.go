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

// listsCounted is lists for the flows' pairs, with each pair's count
// (packets, bytes) carried along in the same order.
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
	allc := make([]uint64, total)
	at := append([]int(nil), start[:n]...)
	for bi, b := range p.blocks {
		cb := c.blocks[bi]
		for i, v := range b {
			t := v >> 32
			all[at[t]] = uint32(v)
			allc[at[t]] = cb[i]
			at[t]++
		}
	}
	out := make([][]uint32, n)
	outc := make([][]uint64, n)
	for t := range out {
		out[t] = all[start[t]:start[t+1]:start[t+1]]
		outc[t] = allc[start[t]:start[t+1]:start[t+1]]
	}
	return out, outc
}

// appendCounts appends the counts section: the groups', then the flows'
// (fl in the file's order).
func (b *Builder) appendCounts(out []byte, fl []*Flow) []byte {
	for g := range b.gpk {
		out = binary.AppendUvarint(out, b.gpk[g])
		out = binary.AppendUvarint(out, b.gby[g])
	}
	for _, f := range fl {
		for _, c := range f.cnt {
			out = binary.AppendUvarint(out, c>>cntShift)
			out = binary.AppendUvarint(out, c&(1<<cntShift-1))
		}
	}
	return out
}

// HasCounts says whether the segment holds counts (version 6).
func (s *Segment) HasCounts() bool { return s.counts != nil }

// checkCounts checks the counts' CRC once.
func (s *Segment) checkCounts() error {
	if s.err != nil {
		return s.err
	}
	if s.counts == nil {
		return fmt.Errorf("%s: no counts (a version 5 segment)", s.Name)
	}
	if !s.countsOK {
		if crc32.Checksum(s.counts, crcTable) != s.countSum {
			s.fail("counts")
			return s.err
		}
		s.countsOK = true
	}
	return nil
}

// GroupCounts hands fn each group's packets and bytes, in group order. It
// fails (and Err says so) when the counts are damaged or absent; fn may
// then have seen figures that must not be trusted.
func (s *Segment) GroupCounts(fn func(g int, pkts, bytes uint64)) error {
	if err := s.checkCounts(); err != nil {
		return err
	}
	p := s.counts
	for g := 0; g < int(s.ng); g++ {
		var pk, by uint64
		var ok1, ok2 bool
		pk, p, ok1 = uvarint(p)
		by, p, ok2 = uvarint(p)
		if !ok1 || !ok2 {
			s.fail("group counts")
			return s.err
		}
		fn(g, pk, by)
	}
	s.flowCounts = p
	return nil
}

// FlowCounts hands fn, for each flow of table (the segment's FlowTable, in
// its order) and each of its groups, the flow's packets and bytes in that
// group. GroupCounts must have run. Damage: as GroupCounts.
func (s *Segment) FlowCounts(table []Flow, fn func(f int, g uint32, pkts, bytes uint64)) error {
	if err := s.checkCounts(); err != nil {
		return err
	}
	if s.flowCounts == nil {
		if err := s.GroupCounts(func(int, uint64, uint64) {}); err != nil {
			return err
		}
	}
	p := s.flowCounts
	for i := range table {
		for _, g := range table[i].Groups {
			var pk, by uint64
			var ok1, ok2 bool
			pk, p, ok1 = uvarint(p)
			by, p, ok2 = uvarint(p)
			if !ok1 || !ok2 {
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
