package query

// Selecting by origin: fmslice's --port, --direction, --rule, --vni and
// --gwlb-endpoint, answered from the segments' origin terms (version 7,
// store/segment origin.go). The selection is and across criteria, or
// within one; a segment without origin terms (versions 5 and 6) keeps all
// its groups, which the caller then reads and decides packet by packet
// from the chunk's metadata, as it does for the groups kept.

import "github.com/fmcap/fmcap/store/segment"

// Origins is a selection by origin: each criterion a list of accepted
// values, nil for any. A nil *Origins selects everything.
type Origins struct {
	Ports, Dirs, Rules, VNIs, Endpoints []uint64
}

// criterion is one flag's list and the term kind that answers it.
type criterion struct {
	kind byte
	vals []uint64
}

func (o *Origins) criteria() [5]criterion {
	return [5]criterion{
		{segment.KindIface, o.Ports}, {segment.KindDir, o.Dirs}, {segment.KindRule, o.Rules},
		{segment.KindVNI, o.VNIs}, {segment.KindEndpoint, o.Endpoints},
	}
}

// Indexed says whether the selection narrows anything.
func (o *Origins) Indexed() bool {
	if o == nil {
		return false
	}
	for _, c := range o.criteria() {
		if c.vals != nil {
			return true
		}
	}
	return false
}

// Groups is the groups of s that may hold a selected packet.
func (o *Origins) Groups(s *segment.Segment) segment.Bits {
	out := segment.Bits{All: true}
	if !o.Indexed() || !s.HasOrigins() {
		return out
	}
	for _, c := range o.criteria() {
		if c.vals == nil {
			continue
		}
		b := segment.NewBits(s.Groups())
		for _, v := range c.vals {
			if key, ok := segment.OriginKey(c.kind, v); ok { // a value that does not fit matches no packet
				s.PostingsInto(c.kind, key, b)
			}
		}
		out = out.And(b)
	}
	return out
}
