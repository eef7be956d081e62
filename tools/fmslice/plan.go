package main

// Using the index. The planner (package query) turns the filter into
// the groups of seqs each segment says may match; frames holding none of
// them are not decompressed. Seqs no valid segment covers — not indexed
// yet, missed by the indexer, or in a segment that fails its checksum —
// are always read: the index only ever removes work, never packets,
// because libpcap still applies the whole filter to every packet read.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/store/segment"
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
	pl := query.ParsePlan(expr)
	if !pl.Indexed() {
		return nil
	}
	list, err := segment.List(dir)
	if err != nil || len(list) == 0 {
		return nil
	}
	// Segments are independent: evaluated on every core, merged in order.
	results := make([]segResult, len(list))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(list)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < len(list); i = int(next.Add(1)) - 1 {
				results[i] = evalSegment(dir, list[i], pl, from, to)
			}
		}()
	}
	wg.Wait()
	p := &plan{}
	for _, r := range results {
		if errors.Is(r.err, os.ErrNotExist) {
			continue // removed since the listing (retention, a rebuild): its seqs are read
		}
		if r.err != nil {
			p.refused = append(p.refused, r.err.Error())
			fmt.Fprintf(warn, "fmslice: index segment refused, its range is scanned instead: %v\n", r.err)
			continue
		}
		p.segs += r.consulted
		p.groups += r.groups
		p.kept += r.kept
		p.covered = append(p.covered, r.covered)
		p.candidate = append(p.candidate, r.candidate...)
	}
	p.covered = merge(p.covered)
	p.candidate = merge(p.candidate)
	return p
}

// segResult is what one segment says about a query.
type segResult struct {
	err                     error
	covered                 seqRange   // the seqs it holds (valid segment)
	candidate               []seqRange // its candidate groups, and its gaps
	consulted, groups, kept int
}

// evalSegment opens segment e and evaluates the plan on it.
func evalSegment(dir string, e segment.Entry, pl *query.Plan, from, to int64) segResult {
	s, err := segment.Open(dir, e)
	if err != nil {
		return segResult{err: err}
	}
	defer s.Close()
	r := segResult{covered: seqRange{s.First, s.Last}}
	for _, gp := range s.Gaps { // seqs it never saw: always read
		r.candidate = append(r.candidate, seqRange{gp[0], gp[1]})
	}
	if s.Indexed > 0 && (s.MaxTS < from || s.MinTS >= to) {
		return r // outside the range in time: its frames are skipped by time anyway
	}
	bits := pl.Groups(s)
	inside := s.MinTS >= from && s.MaxTS < to // every group in the range: no group times needed
	var cand []seqRange
	kept := 0
	bits.Each(s.Groups(), func(g int) {
		if !inside {
			if lo, hi := s.GroupTimes(g); lo > hi || hi < from || lo >= to {
				return
			}
		}
		lo, hi := s.GroupSeqs(uint32(g))
		cand = appendRange(cand, lo, hi)
		kept++
	})
	if err := s.Err(); err != nil { // a part it read failed its check: trust none of it
		return segResult{err: err}
	}
	r.consulted, r.groups, r.kept = 1, s.Groups(), kept
	r.candidate = append(r.candidate, cand...)
	return r
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

// covers says whether valid segments cover every seq of first..last.
func (p *plan) covers(first, last uint64) bool {
	at := first
	i := sort.Search(len(p.covered), func(i int) bool { return p.covered[i].hi >= first })
	for ; i < len(p.covered) && at <= last; i++ {
		if p.covered[i].lo > at {
			return false
		}
		at = p.covered[i].hi + 1
	}
	return at > last
}

// need says whether a frame with seqs first..last must be read.
func (p *plan) need(first, last uint64) bool {
	// Read it unless valid segments cover every one of its seqs...
	if !p.covers(first, last) {
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
