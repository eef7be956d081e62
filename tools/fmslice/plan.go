package main

// Using the index. The planner (indexer/segment) turns the filter into
// the groups of seqs each segment says may match; frames holding none of
// them are not decompressed. Seqs no valid segment covers — not indexed
// yet, missed by the indexer, or in a segment that fails its checksum —
// are always read: the index only ever removes work, never packets,
// because libpcap still applies the whole filter to every packet read.

import (
	"fmt"
	"io"
	"sort"

	"fmcap/indexer/segment"
)

type seqRange struct{ lo, hi uint64 }

type plan struct {
	covered   []seqRange // seqs valid segments hold
	candidate []seqRange // seqs the index says may match (and gaps)
	segs      int
	refused   []string
	groups    int
	kept      int
}

// loadPlan reads the segments of dir that overlap [from, to) and evaluates
// the filter on them. It returns nil when there is nothing to use.
func loadPlan(dir, expr string, from, to int64, warn io.Writer) *plan {
	pl := segment.ParsePlan(expr)
	if !pl.Indexed() {
		return nil
	}
	list, err := segment.List(dir)
	if err != nil || len(list) == 0 {
		return nil
	}
	p := &plan{}
	refuse := func(err error) {
		p.refused = append(p.refused, err.Error())
		fmt.Fprintf(warn, "fmslice: index segment refused, its range is scanned instead: %v\n", err)
	}
	for _, e := range list {
		s, err := segment.Open(dir, e)
		if err != nil {
			refuse(err)
			continue
		}
		if s.Indexed > 0 && (s.MaxTS < from || s.MinTS >= to) {
			// Outside the range in time: its frames are skipped by time
			// anyway, but not the seqs it never saw.
			p.covered = append(p.covered, seqRange{s.First, s.Last})
			for _, gp := range s.Gaps {
				p.candidate = append(p.candidate, seqRange{gp[0], gp[1]})
			}
			s.Close()
			continue
		}
		bits := pl.Groups(s)
		inside := s.MinTS >= from && s.MaxTS < to // every group in the range: no group times needed
		var cand []seqRange
		for g := 0; g < s.Groups(); g++ {
			if !bits.Has(g) {
				continue
			}
			if !inside {
				if lo, hi := s.GroupTimes(g); lo > hi || hi < from || lo >= to {
					continue
				}
			}
			lo, hi := s.GroupSeqs(uint32(g))
			cand = appendRange(cand, lo, hi)
		}
		if err := s.Err(); err != nil { // a part it read failed its check: trust none of it
			refuse(err)
			s.Close()
			continue
		}
		p.segs++
		p.groups += s.Groups()
		p.kept += groupsIn(cand, s)
		p.covered = append(p.covered, seqRange{s.First, s.Last})
		for _, gp := range s.Gaps {
			p.candidate = append(p.candidate, seqRange{gp[0], gp[1]})
		}
		p.candidate = append(p.candidate, cand...)
		s.Close()
	}
	p.covered = merge(p.covered)
	p.candidate = merge(p.candidate)
	return p
}

// groupsIn is how many of s's groups the candidate ranges hold.
func groupsIn(rs []seqRange, s *segment.Segment) int {
	n := 0
	for _, r := range rs {
		n += int(s.GroupOf(r.hi)-s.GroupOf(r.lo)) + 1
	}
	return n
}

// merge sorts ranges and joins those that overlap or touch, so that both
// their lo and hi ascend (need binary-searches on hi: a gap inside a
// candidate group, or overlapping segments, must not hide a range).
func merge(rs []seqRange) []seqRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func appendRange(rs []seqRange, lo, hi uint64) []seqRange {
	if n := len(rs); n > 0 && rs[n-1].hi+1 == lo {
		rs[n-1].hi = hi
		return rs
	}
	return append(rs, seqRange{lo, hi})
}

// need says whether a frame with seqs first..last must be read.
func (p *plan) need(first, last uint64) bool {
	// Read it unless valid segments cover every one of its seqs...
	at := first
	i := sort.Search(len(p.covered), func(i int) bool { return p.covered[i].hi >= first })
	for ; i < len(p.covered) && at <= last; i++ {
		if p.covered[i].lo > at {
			return true
		}
		at = p.covered[i].hi + 1
	}
	if at <= last {
		return true
	}
	// ...and none of them is a candidate.
	j := sort.Search(len(p.candidate), func(j int) bool { return p.candidate[j].hi >= first })
	return j < len(p.candidate) && p.candidate[j].lo <= last
}

// must appends to out the seq ranges within first..last that must be read
// packet by packet: those no valid segment covers, and the candidates. A
// frame's other packets cannot match and are not even handed to libpcap.
func (p *plan) must(first, last uint64, out []seqRange) []seqRange {
	out = out[:0]
	add := func(lo, hi uint64) {
		lo, hi = max(lo, first), min(hi, last)
		if lo <= hi {
			out = append(out, seqRange{lo, hi})
		}
	}
	at := first // uncovered stretches
	i := sort.Search(len(p.covered), func(i int) bool { return p.covered[i].hi >= first })
	for ; i < len(p.covered) && at <= last; i++ {
		if c := p.covered[i]; c.lo > at {
			add(at, c.lo-1)
		}
		at = p.covered[i].hi + 1
	}
	if at <= last {
		add(at, last)
	}
	j := sort.Search(len(p.candidate), func(j int) bool { return p.candidate[j].hi >= first })
	for ; j < len(p.candidate) && p.candidate[j].lo <= last; j++ {
		add(p.candidate[j].lo, p.candidate[j].hi)
	}
	return merge(out)
}

func (p *plan) explain(w io.Writer, res *result) {
	total := res.frames + res.skipped
	frac := 0.0
	if total > 0 {
		frac = float64(res.skipped) / float64(total)
	}
	fmt.Fprintf(w, "plan: %d index segments consulted, %d refused; %d of %d seq groups may match\n", p.segs, len(p.refused), p.kept, p.groups)
	fmt.Fprintf(w, "plan: %d frames read, %d skipped of %d in the range (%.1f%% skipped), %d bytes decompressed\n",
		res.frames, res.skipped, total, 100*frac, res.decompressed)
}
