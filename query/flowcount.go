package query

// Flows of a range from the index: a segment's flow table answers exactly
// for the flows whose groups all lie inside the range; the rest, and the
// seqs no segment covers, are counted from the packets the caller reads
// (FlowCounter), which the Index returned by UseSegments says where to find.
//
// Split by origin (fmslice flows --by-origin), the same holds with the
// segments' flow origins (version 8) in place of their flow tables' figures:
// an older segment cannot split its flows, so its seqs are read as if no
// segment covered them, and the packets read are counted at the origin
// their chunk's metadata gives.

import (
	"errors"
	"os"
	"strings"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/segment"
)

// FlowQuery is one flows query over an index directory.
type FlowQuery struct {
	Store, Dir string // the store, and its index directory
	From, To   int64  // the range, [From, To) in Unix ns
	Plan       *Plan  // a filter flows answer exactly (ParseFilter ok)
	ByOrigin   bool   // split the flows by origin (FlowAnswer.ByOrigin)
	// Through is the highest seq retention removed, for a store that is
	// not a directory (Store ""): an object store's records of it.
	Through uint64
}

// OriginKey is where packets were captured as fmslice flows --by-origin
// splits flows: fwd's port, the direction and the tunnel (not the rule).
// The zero value is an origin not known (no stored metadata).
type OriginKey struct {
	Known  bool
	Port   uint16
	Dir    uint8
	Origin origin.Origin
}

// OriginFlowKey is a flow at one origin.
type OriginFlowKey struct {
	segment.FlowKey
	OriginKey
}

// originKey is the OriginKey of a segment's origin.
func originKey(o *segment.Origin) OriginKey {
	if !o.Known {
		return OriginKey{}
	}
	return OriginKey{Known: true, Port: o.Port, Dir: o.Dir, Origin: o.Full}
}

// FlowAnswer is what a flows query found, and how.
type FlowAnswer struct {
	Flows              map[segment.FlowKey]*segment.Flow
	ByOrigin           map[OriginFlowKey]*segment.Flow // FlowQuery.ByOrigin: the flows by origin (Flows stays empty)
	Packets, FromIndex uint64                          // packets counted, of which from the index's flow tables
	Frames             int                             // frames read
	GapRead            bool                            // why frames were read: seqs no segment covers (the open chunk, gaps)...
	CutRead            bool                            // ...groups cut by the range's edges, or shared with flows that are
	Refused            []string                        // segments not used, and why
	Notes              []string                        // chunks read instead of indexed, and why
	Damaged            []error                         // what could not be read: the answer is incomplete
	Repaired           []error                         // damage from which every frame was recovered
}

// NewFlowAnswer is an empty answer.
func NewFlowAnswer() *FlowAnswer {
	return &FlowAnswer{Flows: map[segment.FlowKey]*segment.Flow{}, ByOrigin: map[OriginFlowKey]*segment.Flow{}}
}

// Why says why frames were read, for the summary line.
func (a *FlowAnswer) Why() string {
	var w []string
	if a.CutRead {
		w = append(w, "groups the range cuts")
	}
	if a.GapRead {
		w = append(w, "seqs not indexed: the open chunk, gaps")
	}
	if len(w) == 0 {
		return "none needed"
	}
	return strings.Join(w, ", ")
}

// Add counts pkts packets of flow k.
func (a *FlowAnswer) Add(k *segment.FlowKey, pkts, bytes uint64, first, last int64, flags uint8) {
	a.Packets += pkts
	addFlow(a.Flows, *k, k, pkts, bytes, first, last, flags)
}

// AddOrigin counts pkts packets of flow k at its origin.
func (a *FlowAnswer) AddOrigin(k *OriginFlowKey, pkts, bytes uint64, first, last int64, flags uint8) {
	a.Packets += pkts
	addFlow(a.ByOrigin, *k, &k.FlowKey, pkts, bytes, first, last, flags)
}

// addFlow adds to flow k of m (fk its flow key) pkts packets.
func addFlow[K comparable](m map[K]*segment.Flow, k K, fk *segment.FlowKey, pkts, bytes uint64, first, last int64, flags uint8) {
	f := m[k]
	if f == nil {
		m[k] = &segment.Flow{FlowKey: *fk, Packets: pkts, Bytes: bytes, First: first, Last: last, Flags: flags}
		return
	}
	f.Packets += pkts
	f.Bytes += bytes
	f.First, f.Last = min(f.First, first), max(f.Last, last)
	f.Flags |= flags
}

// segUse is what the scan needs of a segment used: where its seqs are, and
// which of its groups and flows the index already counted.
type segUse struct {
	first, last uint64
	gsize       uint32
	gaps        [][2]uint64
	scan        []bool                       // per group: read it (nil: none)
	exact       map[segment.FlowKey]struct{} // flows counted from the flow table
}

// inSegment says whether seq (within first..last) was indexed: it is not
// in a gap.
func (u *segUse) inSegment(seq uint64) bool {
	for _, g := range u.gaps {
		if seq >= g[0] && seq <= g[1] {
			return false
		}
	}
	return true
}

// counted says whether the index counted the packet at seq (an indexed
// seq of the segment) of flow k: it did unless seq is in a group to read
// and k is not a flow the flow table answered for.
func (u *segUse) counted(seq uint64, k *segment.FlowKey) bool {
	g := seq/uint64(u.gsize) - u.first/uint64(u.gsize)
	if u.scan == nil || !u.scan[g] {
		return true // a group wholly inside or outside the range: the table's figures hold
	}
	_, ok := u.exact[*k]
	return ok
}

// FlowCounter counts the packets a flows query reads that the index did
// not count: those of seqs no segment used covers, and of flows the index
// could not answer for in the groups to read. Packets come in seq order.
type FlowCounter struct {
	fq   *FlowQuery
	ans  *FlowAnswer
	uses []*segUse
	ui   int // uses[ui] is the first segment that may hold the next seq
	p    segment.Packet
}

// Count counts one packet read, with its seq unless known is false (a
// chunk whose frame table was lost, which no segment used covers).
func (k *FlowCounter) Count(seq uint64, known bool, ts int64, wireLen uint32, data []byte) {
	k.CountOrigin(seq, known, ts, wireLen, data, nil)
}

// CountOrigin is Count of a packet captured at o (FlowQuery.ByOrigin; nil:
// a flows query not split by origin).
func (k *FlowCounter) CountOrigin(seq uint64, known bool, ts int64, wireLen uint32, data []byte, o *OriginKey) {
	DecodePacket(data, &k.p)
	key, flags, ok := segment.KeyOf(&k.p)
	if !ok || !k.fq.Plan.MatchFlow(&key) {
		return
	}
	var u *segUse
	if known {
		for k.ui < len(k.uses) && k.uses[k.ui].last < seq {
			k.ui++
		}
		if k.ui < len(k.uses) && k.uses[k.ui].first <= seq {
			u = k.uses[k.ui]
		}
	}
	switch {
	case u == nil || !u.inSegment(seq):
		k.ans.GapRead = true
	case u.counted(seq, &key):
		return
	default:
		k.ans.CutRead = true
	}
	if o != nil {
		k.ans.AddOrigin(&OriginFlowKey{key, *o}, 1, uint64(wireLen), ts, ts, flags)
		return
	}
	k.ans.Add(&key, 1, uint64(wireLen), ts, ts, flags)
}

// UseSegments counts in ans what the index answers exactly, leaving out
// segments that reach into exclude or past stored (the last seq stored),
// and returns the counter for the packets of the frames still to read,
// and as an Index the seqs the segments cover and the groups to read.
func (fq *FlowQuery) UseSegments(ans *FlowAnswer, exclude []SeqRange, stored uint64) (*FlowCounter, *Index) {
	pl := &Index{}
	segs, _ := segment.List(fq.Dir) // no index: everything is read
	// A segment reaching into seqs retention removed (left by a writer that
	// died between removing a chunk and its segments) would count packets
	// that are gone: it is not used, and what is still stored of its range
	// is read.
	gone := fq.Through
	if fq.Store != "" {
		gone, _ = store.RemovedThrough(fq.Store)
	}
	var uses []*segUse
	var usedThrough uint64
	for _, e := range segs {
		if gone > 0 && e.First <= gone || len(uses) > 0 && e.First <= usedThrough || overlapsAny(exclude, e.First, e.Last) || e.Last > stored {
			continue // its seqs count as not indexed: read
		}
		u, err := fq.useSegment(ans, e)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errNoFlowOrigins) {
			continue // removed since the listing (retention, a rebuild), or older than flow origins: its seqs are read
		}
		if err != nil {
			ans.Refused = append(ans.Refused, err.Error())
			continue
		}
		uses = append(uses, u)
		usedThrough = e.Last
		at := u.first
		for _, g := range u.gaps {
			if g[0] > at {
				pl.Covered = append(pl.Covered, SeqRange{Lo: at, Hi: g[0] - 1})
			}
			at = g[1] + 1
		}
		if at <= u.last {
			pl.Covered = append(pl.Covered, SeqRange{Lo: at, Hi: u.last})
		}
		for g, read := range u.scan {
			if read {
				lo, hi := groupSeqs(u, g)
				pl.Candidate = AppendRange(pl.Candidate, lo, hi)
			}
		}
	}
	pl.Covered = Merge(pl.Covered)
	pl.Candidate = Merge(pl.Candidate)
	return &FlowCounter{fq: fq, ans: ans, uses: uses}, pl
}

func groupSeqs(u *segUse, g int) (lo, hi uint64) {
	G := uint64(u.gsize)
	lo = (u.first/G + uint64(g)) * G
	return max(lo, u.first), min(lo+G-1, u.last)
}

func overlapsAny(rs []SeqRange, lo, hi uint64) bool {
	for _, r := range rs {
		if r.Lo <= hi && lo <= r.Hi {
			return true
		}
	}
	return false
}

// errNoFlowOrigins: a segment older than version 8 cannot split its flows
// by origin.
var errNoFlowOrigins = errors.New("no flow origins")

// useSegment opens segment e, adds to ans the flows its table answers for
// exactly in the range (by origin: its flow origins), and says which of its
// groups must be read for the rest. A segment found damaged adds nothing.
func (fq *FlowQuery) useSegment(ans *FlowAnswer, e segment.Entry) (*segUse, error) {
	s, err := segment.Open(fq.Dir, e)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	u := &segUse{first: s.First, last: s.Last, gsize: s.GroupSize, gaps: s.Gaps}
	if s.Indexed == 0 || s.MaxTS < fq.From || s.MinTS >= fq.To {
		return u, nil // no packet of it is in the range
	}
	if fq.ByOrigin && !s.HasFlowOrigins() {
		return nil, errNoFlowOrigins
	}
	table, err := s.FlowTable()
	if err != nil {
		return nil, err
	}
	inside := s.MinTS >= fq.From && s.MaxTS < fq.To
	// Each group is inside the range, outside it, or cut by an edge.
	const (
		out = iota
		in
		cut
	)
	var cat []uint8
	if !inside {
		cat = make([]uint8, s.Groups())
		for g := range cat {
			lo, hi := s.GroupTimes(g)
			switch {
			case lo > hi || hi < fq.From || lo >= fq.To:
				cat[g] = out
			case lo >= fq.From && hi < fq.To:
				cat[g] = in
			default:
				cat[g] = cut
			}
		}
		if err := s.Err(); err != nil {
			return nil, err
		}
		u.scan = make([]bool, s.Groups()) // the groups of the flows that are not exact, below
	}
	var exact []int // in table
	u.exact = map[segment.FlowKey]struct{}{}
	for i := range table {
		f := &table[i]
		if !fq.Plan.MatchFlow(&f.FlowKey) {
			continue
		}
		all := true
		for _, g := range f.Groups {
			if cat != nil && cat[g] != in {
				all = false
				break
			}
		}
		if all {
			exact = append(exact, i)
			u.exact[f.FlowKey] = struct{}{}
			continue
		}
		// Its packets in the range are counted from its groups that
		// reach into the range.
		for _, g := range f.Groups {
			if cat[g] != out {
				u.scan[g] = true
			}
		}
	}
	if fq.ByOrigin && len(exact) > 0 {
		origins, per, err := s.FlowOrigins(table)
		if err != nil {
			return nil, err
		}
		for _, i := range exact {
			f := &table[i]
			for _, e := range per[i] {
				var o OriginKey
				if e.Origin >= 0 {
					o = originKey(&origins[e.Origin])
				}
				ans.AddOrigin(&OriginFlowKey{f.FlowKey, o}, e.Packets, e.Bytes, e.First, e.Last, e.Flags)
			}
			ans.FromIndex += f.Packets
		}
		return u, nil
	}
	for _, i := range exact {
		f := &table[i]
		ans.Add(&f.FlowKey, f.Packets, f.Bytes, f.First, f.Last, f.Flags)
		ans.FromIndex += f.Packets
	}
	return u, nil
}
