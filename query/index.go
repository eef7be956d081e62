package query

// Using the index. LoadIndex turns the filter, through the planner, into
// the seqs each segment of an index directory says may match; frames
// holding none of them need not be decompressed. Seqs no valid segment covers — not indexed
// yet, missed by the indexer, or in a segment that fails its checksum —
// are always read: the index only ever removes work, never packets,
// because libpcap still applies the whole filter to every packet read.

import (
	"errors"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/fmcap/fmcap/store/segment"
)

// SeqRange is the seqs Lo..Hi.
type SeqRange struct{ Lo, Hi uint64 }

// Index is what an index directory says of a filter over a time range.
type Index struct {
	Covered   []SeqRange // seqs valid segments hold
	Candidate []SeqRange // seqs the index says may match (and gaps)
	Segs      int        // segments consulted
	Refused   []string   // segments refused (damaged), why
	Groups    int        // groups in the segments consulted
	Kept      int        // of which may match
	TermKept  int        // of which the term lists alone kept (before the flow tables narrowed them)
	FlowSegs  int        // segments whose flow table narrowed the plan
}

// LoadIndex reads the segments of dir that overlap [from, to) and
// evaluates the filter and the origin selection (sel, nil for none) on
// them; refused is told of each segment that fails its checks (its seqs
// are then scanned). It returns nil when there is nothing to use.
func LoadIndex(dir, expr string, sel *Origins, from, to int64, refused func(error)) *Index {
	pl, exact := ParseExact(expr)
	if !exact {
		pl = ParsePlan(expr)
	}
	if !pl.Indexed() && !(exact && pl.hasNot()) && !sel.Indexed() {
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
				results[i] = evalSegment(dir, list[i], pl, sel, exact, from, to)
			}
		}()
	}
	wg.Wait()
	p := &Index{}
	for _, r := range results {
		if errors.Is(r.err, os.ErrNotExist) {
			continue // removed since the listing (retention, a rebuild): its seqs are read
		}
		if r.err != nil {
			p.Refused = append(p.Refused, r.err.Error())
			refused(r.err)
			continue
		}
		p.Segs += r.consulted
		p.Groups += r.groups
		p.Kept += r.kept
		p.TermKept += r.termKept
		if r.flows {
			p.FlowSegs++
		}
		p.Covered = append(p.Covered, r.covered)
		p.Candidate = append(p.Candidate, r.candidate...)
	}
	p.Covered = Merge(p.Covered)
	p.Candidate = Merge(p.Candidate)
	return p
}

// segResult is what one segment says about a query.
type segResult struct {
	err                     error
	covered                 SeqRange   // the seqs it holds (valid segment)
	candidate               []SeqRange // its candidate groups, and its gaps
	consulted, groups, kept int
	termKept                int  // groups the term lists kept
	flows                   bool // the flow table narrowed them
}

// evalSegment opens segment e and evaluates the plan and the origin
// selection on it.
func evalSegment(dir string, e segment.Entry, pl *Plan, sel *Origins, exact bool, from, to int64) segResult {
	s, err := segment.Open(dir, e)
	if err != nil {
		return segResult{err: err}
	}
	defer s.Close()
	r := segResult{covered: SeqRange{s.First, s.Last}}
	for _, gp := range s.Gaps { // seqs it never saw: always read
		r.candidate = append(r.candidate, SeqRange{gp[0], gp[1]})
	}
	if s.Indexed > 0 && (s.MaxTS < from || s.MinTS >= to) {
		return r // outside the range in time: its frames are skipped by time anyway
	}
	// The origin terms narrow before the flow table is read: fewer groups
	// left, and the flows may not be worth reading.
	terms := pl.Groups(s).And(sel.Groups(s))
	bits, narrowed, err := pl.narrowByFlows(s, terms, exact)
	if err != nil {
		return segResult{err: err}
	}
	r.flows = narrowed
	inside := s.MinTS >= from && s.MaxTS < to // every group in the range: no group times needed
	var cand []SeqRange
	kept, termKept := 0, 0
	terms.Each(s.Groups(), func(g int) {
		if !inside {
			if lo, hi := s.GroupTimes(g); lo > hi || hi < from || lo >= to {
				return
			}
		}
		termKept++
		if !bits.Has(g) {
			return
		}
		lo, hi := s.GroupSeqs(uint32(g))
		cand = AppendRange(cand, lo, hi)
		kept++
	})
	if err := s.Err(); err != nil { // a part it read failed its check: trust none of it
		return segResult{err: err}
	}
	r.consulted, r.groups, r.kept, r.termKept = 1, s.Groups(), kept, termKept
	r.candidate = append(r.candidate, cand...)
	return r
}

// Merge sorts ranges and joins those that overlap or touch, so that both
// their lo and hi ascend (Need binary-searches on hi: a gap inside a
// candidate group, or overlapping segments, must not hide a range).
func Merge(rs []SeqRange) []SeqRange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Lo < rs[j].Lo })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && r.Lo <= out[n-1].Hi+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// AppendRange appends lo..Hi to rs, joined to the last range when they
// touch.
func AppendRange(rs []SeqRange, lo, hi uint64) []SeqRange {
	if n := len(rs); n > 0 && rs[n-1].Hi+1 == lo {
		rs[n-1].Hi = hi
		return rs
	}
	return append(rs, SeqRange{lo, hi})
}

// Covers says whether valid segments cover every seq of first..last.
func (p *Index) Covers(first, last uint64) bool {
	at := first
	i := sort.Search(len(p.Covered), func(i int) bool { return p.Covered[i].Hi >= first })
	for ; i < len(p.Covered) && at <= last; i++ {
		if p.Covered[i].Lo > at {
			return false
		}
		at = p.Covered[i].Hi + 1
	}
	return at > last
}

// Need says whether a frame with seqs first..last must be read.
func (p *Index) Need(first, last uint64) bool {
	// Read it unless valid segments cover every one of its seqs...
	if !p.Covers(first, last) {
		return true
	}
	// ...and none of them is a candidate.
	j := sort.Search(len(p.Candidate), func(j int) bool { return p.Candidate[j].Hi >= first })
	return j < len(p.Candidate) && p.Candidate[j].Lo <= last
}

// Must appends to out the seq ranges within first..last that must be read
// packet by packet: those no valid segment covers, and the candidates. A
// frame's other packets cannot match and are not even handed to libpcap.
func (p *Index) Must(first, last uint64, out []SeqRange) []SeqRange {
	out = out[:0]
	add := func(lo, hi uint64) {
		lo, hi = max(lo, first), min(hi, last)
		if lo <= hi {
			out = append(out, SeqRange{lo, hi})
		}
	}
	at := first // uncovered stretches
	i := sort.Search(len(p.Covered), func(i int) bool { return p.Covered[i].Hi >= first })
	for ; i < len(p.Covered) && at <= last; i++ {
		if c := p.Covered[i]; c.Lo > at {
			add(at, c.Lo-1)
		}
		at = p.Covered[i].Hi + 1
	}
	if at <= last {
		add(at, last)
	}
	j := sort.Search(len(p.Candidate), func(j int) bool { return p.Candidate[j].Hi >= first })
	for ; j < len(p.Candidate) && p.Candidate[j].Lo <= last; j++ {
		add(p.Candidate[j].Lo, p.Candidate[j].Hi)
	}
	return Merge(out)
}
