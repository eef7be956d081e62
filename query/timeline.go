package query

// The timeline of a range: packets and bytes per time bucket, from the
// index where it answers and from the packets elsewhere.
//
// Each index group (64 seqs) is either answered from the segment's counts
// or read, never both:
//   - a group wholly inside the range is answered from the index: without
//     a filter by its counts; with a filter ParseExact accepts, by the
//     counts of the flows that match in it, provided every packet of the
//     group is in a flow whose key decides the filter exactly (FlowExact:
//     no VLAN tag; IPv6 only for filters naming no protocol or port), and
//     no frame of it was cut inside a header. The group's packets count in
//     the bucket of its first packet's time: bucket totals are exact to
//     within one group at each bucket edge a group straddles;
//   - any other group that may hold a match (the range's edges cut it,
//     packets outside flows, a filter the flow keys do not decide) is read
//     and its matching packets counted each in the bucket of its own time;
//   - seqs no valid segment with counts covers (the open chunk, not yet
//     indexed, missed, damaged, version 5 segments) are read.
// So the totals over the range are tcpdump's exactly, and so is every
// bucket whose edges no answered group straddles.

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/segment"
)

// MaxBuckets is the most buckets a timeline holds.
const MaxBuckets = 1 << 20

// Timeline is packets and bytes per bucket of Step ns from From.
type Timeline struct {
	From, Step, End    int64 // buckets From+i*Step, the last one ending at End
	Packets, Bytes     []uint64
	FromIndex, Read    uint64   // packets counted from the index, and read
	GroupsIndex        int      // groups answered from the index
	GroupsRead         int      // groups read (edges, mixed, not exact)
	Frames             int      // frames read
	Refused            []string // segments not used, and why
	Notes              []string // segments without counts, chunks whose tables were rebuilt
	Damaged, Repaired  []error
	GapRead, EdgeRead  bool // why frames were read: seqs no segment answers, the range's edges...
	MixedRead, AnyRead bool // ...groups the flow counts do not decide; any read at all
}

// NewTimeline is an empty timeline of [from, to) in steps of step ns.
func NewTimeline(from, to, step int64) (*Timeline, error) {
	if step <= 0 {
		return nil, fmt.Errorf("step %d ns: must be positive", step)
	}
	n := (uint64(to-from) + uint64(step) - 1) / uint64(step)
	if to <= from || n > MaxBuckets {
		return nil, fmt.Errorf("%d buckets: at most %d (a longer step, or a shorter range)", n, MaxBuckets)
	}
	return &Timeline{From: from, Step: step, End: to, Packets: make([]uint64, n), Bytes: make([]uint64, n)}, nil
}

// Add counts pkts packets of bytes at time ts (outside the range: not).
func (tl *Timeline) Add(ts int64, pkts, bytes uint64) bool {
	if ts < tl.From || ts >= tl.End {
		return false
	}
	i := uint64(ts-tl.From) / uint64(tl.Step)
	if i >= uint64(len(tl.Packets)) {
		return false
	}
	tl.Packets[i] += pkts
	tl.Bytes[i] += bytes
	return true
}

// To is the end of the range.
func (tl *Timeline) To() int64 { return tl.End }

// Why says why frames were read.
func (tl *Timeline) Why() string {
	var w []string
	if tl.EdgeRead {
		w = append(w, "groups the range's edges cut")
	}
	if tl.MixedRead {
		w = append(w, "groups the flow counts do not decide")
	}
	if tl.GapRead {
		w = append(w, "seqs no segment with counts covers")
	}
	if len(w) == 0 {
		return "none needed"
	}
	s := w[0]
	for _, x := range w[1:] {
		s += ", " + x
	}
	return s
}

// TimelineQuery is one timeline over an index directory.
type TimelineQuery struct {
	Store, Dir string
	From, To   int64
	Plan       *Plan // nil: every packet
	Exact      bool  // Plan is from ParseExact: flow counts answer for it
	// Through is the highest seq retention removed, for a store that is
	// not a directory (Store ""): an object store's records of it.
	Through uint64
}

// UseSegments counts in tl what the index answers, leaving out segments
// that reach into exclude or past stored (the last seq stored), and
// returns the seqs the segments used cover and the groups to read.
func (tq *TimelineQuery) UseSegments(tl *Timeline, exclude []SeqRange, stored uint64) *Index {
	pl := &Index{}
	segs, _ := segment.List(tq.Dir) // no index: everything is read
	gone := tq.Through
	if tq.Store != "" {
		gone, _ = store.RemovedThrough(tq.Store)
	}
	// The segments' answers are worked out on every core (a flow filter's
	// counts cost tens of ms a segment of 4 M packets); which of them count
	// is decided after, in order, as if one by one: a segment reaching into
	// seqs one used before it covers is left out, its answer unused.
	type answer struct {
		r    *segTimeline
		err  error
		want bool
	}
	ans := make([]answer, len(segs))
	var wg sync.WaitGroup
	workers := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, e := range segs {
		if gone > 0 && e.First <= gone || overlapsAny(exclude, e.First, e.Last) || e.Last > stored {
			continue // its seqs are read
		}
		ans[i].want = true
		wg.Add(1)
		workers <- struct{}{}
		go func() {
			defer func() { <-workers; wg.Done() }()
			ans[i].r, ans[i].err = tq.useSegment(tl, e)
		}()
	}
	wg.Wait()
	var usedThrough uint64
	used := false
	for i, e := range segs {
		if !ans[i].want || used && e.First <= usedThrough {
			continue // its seqs are read
		}
		r, err := ans[i].r, ans[i].err
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if errors.Is(err, errNoCounts) {
			tl.Notes = append(tl.Notes, err.Error())
			continue
		}
		if err != nil {
			tl.Refused = append(tl.Refused, err.Error())
			continue
		}
		// Only now, with the segment found whole, its answers count.
		for i, pk := range r.pk {
			tl.Packets[r.base+i] += pk
			tl.Bytes[r.base+i] += r.by[i]
			tl.FromIndex += pk
		}
		tl.GroupsIndex += r.answered
		tl.GroupsRead += r.readGroups
		tl.EdgeRead = tl.EdgeRead || r.edge
		tl.MixedRead = tl.MixedRead || r.mixed
		used, usedThrough = true, e.Last
		pl.Segs++
		at := e.First
		for _, g := range r.gaps {
			if g[0] > at {
				pl.Covered = append(pl.Covered, SeqRange{Lo: at, Hi: g[0] - 1})
			}
			at = g[1] + 1
		}
		if at <= e.Last {
			pl.Covered = append(pl.Covered, SeqRange{Lo: at, Hi: e.Last})
		}
		pl.Candidate = append(pl.Candidate, r.read...)
	}
	pl.Covered = Merge(pl.Covered)
	pl.Candidate = Merge(pl.Candidate)
	return pl
}

var errNoCounts = errors.New("no counts")

// segTimeline is what one segment answers: per bucket from base (the
// buckets its time span touches), the groups to read, its gaps.
type segTimeline struct {
	base        int
	pk, by      []uint64
	read        []SeqRange
	gaps        [][2]uint64
	answered    int
	readGroups  int
	edge, mixed bool
}

func (tq *TimelineQuery) useSegment(tl *Timeline, e segment.Entry) (*segTimeline, error) {
	s, err := segment.Open(tq.Dir, e)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	r := &segTimeline{gaps: s.Gaps}
	if s.Indexed == 0 || s.MaxTS < tq.From || s.MinTS >= tq.To {
		return r, nil // no packet of it is in the range
	}
	// The buckets its packets in the range may fall in.
	bucket := func(ts int64) int { return int(uint64(ts-tl.From) / uint64(tl.Step)) }
	r.base = bucket(max(s.MinTS, tl.From))
	n := bucket(min(s.MaxTS, tl.End-1)) - r.base + 1
	r.pk, r.by = make([]uint64, n), make([]uint64, n)
	if !s.HasCounts() {
		return nil, fmt.Errorf("%s: %w (a version 5 segment): its seqs are read; indexer --rebuild adds them", e.Name, errNoCounts)
	}
	ng := s.Groups()
	gpk, gby := make([]uint64, ng), make([]uint64, ng)
	if err := s.GroupCounts(func(g int, pk, by uint64) { gpk[g], gby[g] = pk, by }); err != nil {
		return nil, err
	}
	// Per group: may it match (the plan's groups, narrowed by the flows),
	// and if the flow counts decide it, the matching packets and bytes.
	var may segment.Bits = segment.Bits{All: true}
	var mpk, mby []uint64
	var decided []bool
	if tq.Plan != nil {
		may = tq.Plan.Groups(s)
		if tq.Exact {
			// The flow counts decide most groups; the term lists say
			// which of the others may match.
			if mpk, mby, decided, err = tq.flowCounts(s); err != nil {
				return nil, err
			}
		} else if may, _, err = tq.Plan.narrowByFlows(s, may, false); err != nil {
			return nil, err
		}
	}
	inside := s.MinTS >= tq.From && s.MaxTS < tq.To
	for g := 0; g < ng; g++ {
		if gpk[g] == 0 || !may.Has(g) && (decided == nil || !decided[g]) {
			continue // nothing indexed, or nothing that may match
		}
		lo, hi := s.GroupTimes(g)
		if !inside && (hi < tq.From || lo >= tq.To) {
			continue
		}
		cut := !inside && (lo < tq.From || hi >= tq.To)
		pk, by := gpk[g], gby[g]
		if mpk != nil {
			pk, by = mpk[g], mby[g]
		}
		switch {
		case cut && decided != nil && decided[g] && pk == 0:
			continue // no packet of it matches: nothing to read
		case cut:
			r.edge = true
		case tq.Plan != nil && (decided == nil || !decided[g]):
			r.mixed = true
		default:
			if pk > 0 {
				i := bucket(lo) - r.base
				r.pk[i] += pk
				r.by[i] += by
			}
			r.answered++
			continue
		}
		slo, shi := s.GroupSeqs(uint32(g))
		r.read = AppendRange(r.read, slo, shi)
		r.readGroups++
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// flowCounts is, per group, the packets and bytes of the flows that match
// (an exact plan), and whether they are the group's answer: no packet of
// the group outside flows (ARP, other protocols, frames cut inside a
// header: their kind terms say which groups hold them), every flow in it
// FlowExact.
func (tq *TimelineQuery) flowCounts(s *segment.Segment) (mpk, mby []uint64, decided []bool, err error) {
	ng := s.Groups()
	mpk, mby = make([]uint64, ng), make([]uint64, ng)
	outside := segment.NewBits(ng)
	outsideFlows(s, outside)
	decided = make([]bool, ng)
	for g := range decided {
		decided[g] = !outside.Has(g)
	}
	const (
		match   = 1 // FlowExact, matches: its counts count
		inexact = 2 // not FlowExact: its groups are read
	)
	pick := func(k *segment.FlowKey) uint8 {
		switch {
		case !tq.Plan.FlowExact(k):
			return inexact
		case tq.Plan.MatchFlow(k):
			return match
		}
		return 0
	}
	if err := s.FlowCountsOf(pick, func(c uint8, g uint32, pk, by uint64) {
		if c == match {
			mpk[g] += pk
			mby[g] += by
		} else {
			decided[g] = false
		}
	}); err != nil {
		return nil, nil, nil, err
	}
	return mpk, mby, decided, s.Err()
}
