package segment

// Origin terms (version 7): where each packet was captured beyond its
// bytes — fwd's port, the direction, the rule, and the tunnel that brought
// it (a Traffic Mirroring session's VNI, a GWLB endpoint id) — as the ring
// record and the chunk's metadata frame keep it (shmring FORMAT, store/chunk
// FORMAT). fmslice's --port, --direction, --rule, --vni and --gwlb-endpoint
// are planned from them, so a selective origin query reads only the groups
// holding its packets instead of every frame of the range.
//
// Few packets' origins differ from the packet before (a port's packets come
// in bursts, a tunnel's flows share an endpoint), so the builder keys each
// distinct origin once (a one-entry cache, then a map) and keeps one group
// list per distinct origin; Encode turns those into the terms' lists, the
// union of the lists of the origins holding each value.
//
// A packet whose origin the indexer was not told (Origin.Known false:
// chunks written before origins were kept, uncompressed chunks written
// before their metadata sidecar, a damaged metadata frame) gets no origin term; fmslice's selection refuses such a
// packet too, so the index still names every group a selection can match.

import (
	"encoding/binary"
	"slices"

	"github.com/fmcap/fmcap/internal/origin"
)

// Origin term kinds (directory keys, big-endian, after 'T' in the
// directory's order).
const (
	KindDir      = 'd' // direction (shmring.Dir), 1 byte
	KindEndpoint = 'e' // GWLB endpoint id (GENEVE option type 1), 8 bytes
	KindIface    = 'i' // fwd's port index, 2 bytes
	KindRule     = 'r' // rule id, 4 bytes
	KindVNI      = 'v' // Traffic Mirroring VNI, 3 bytes
)

// originKinds are the origin kinds in directory order.
var originKinds = [...]byte{KindDir, KindEndpoint, KindIface, KindRule, KindVNI}

// Origin is a packet's origin as the index keys it; the zero value is an
// unknown origin (no terms). Comparable: it keys the builder's map.
type Origin struct {
	Known  bool
	Dir    uint8
	Port   uint16
	Rule   uint32
	Tunnel origin.Kind // origin.None, GWLB or Mirror
	ID     uint64      // GWLB: the endpoint id; Mirror: the VNI
	// Full is the whole identity as the chunk's metadata keeps it (a GWLB
	// flow cookie, a mirror's outer source): the terms need only Tunnel
	// and ID, but the flow origins (version 8) answer fmslice flows
	// --by-origin, whose rows show all of it.
	Full origin.Origin
}

// OriginOf is the index's view of a packet's port, direction, rule and
// tunnel (o nil or origin.None: not tunnelled).
func OriginOf(port uint16, dir uint8, rule uint32, o *origin.Origin) Origin {
	x := Origin{Known: true, Dir: dir, Port: port, Rule: rule}
	if o == nil {
		return x
	}
	if ep, _, _, ok := o.GWLB(); ok {
		x.Tunnel, x.ID, x.Full = origin.GWLB, ep, *o
	} else if vni, _, ok := o.Mirror(); ok {
		x.Tunnel, x.ID, x.Full = origin.Mirror, uint64(vni), *o
	}
	return x
}

// value is the origin's value for a term kind; false when it has none
// (a VNI of a packet that was not mirrored).
func (o *Origin) value(kind byte) (uint64, bool) {
	switch kind {
	case KindDir:
		return uint64(o.Dir), true
	case KindEndpoint:
		return o.ID, o.Tunnel == origin.GWLB
	case KindIface:
		return uint64(o.Port), true
	case KindRule:
		return uint64(o.Rule), true
	case KindVNI:
		return o.ID, o.Tunnel == origin.Mirror
	}
	return 0, false
}

// OriginKey is the directory key of an origin term: v big-endian in the
// kind's width. ok is false when v does not fit (no packet has that value)
// or the kind is not an origin kind.
func OriginKey(kind byte, v uint64) (key []byte, ok bool) {
	var w int
	switch kind {
	case KindDir:
		w = 1
	case KindIface:
		w = 2
	case KindVNI:
		w = 3
	case KindRule:
		w = 4
	case KindEndpoint:
		w = 8
	default:
		return nil, false
	}
	if w < 8 && v>>(8*w) != 0 {
		return nil, false
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[8-w:], true
}

// HasOrigins says whether the segment holds origin terms (version 7): an
// older one cannot answer an origin selection, and every group may match.
func (s *Segment) HasOrigins() bool { return s.version >= 7 }

// origin adds group g to the list of the packet's origin.
func (b *Builder) origin(o *Origin, g uint32) {
	i := b.lastOrig
	if i < 0 || b.origKeys[i] != *o {
		var ok bool
		if i, ok = b.origIdx[*o]; !ok {
			i = int32(len(b.origKeys))
			b.origIdx[*o] = i
			b.origKeys = append(b.origKeys, *o)
			b.origLast = append(b.origLast, 0)
		}
		b.lastOrig = i
	}
	seen(&b.origLast[i], &b.origSeen, i, g)
}

// originTerm is one origin term's key and groups.
type originTerm struct {
	kind   byte
	key    uint64
	groups []uint32
}

// originTerms are the origin terms in directory order (kind, then key):
// each value's groups, the union of the groups of the origins holding it.
func (b *Builder) originTerms() []originTerm {
	if len(b.origKeys) == 0 {
		return nil
	}
	per := lists(&b.origSeen, len(b.origKeys))
	ng := len(b.gmin)
	var out []originTerm
	for _, kind := range originKinds {
		of := map[uint64][]int{} // value → the origins holding it
		for i := range b.origKeys {
			if v, ok := b.origKeys[i].value(kind); ok {
				of[v] = append(of[v], i)
			}
		}
		keys := make([]uint64, 0, len(of))
		for v := range of {
			keys = append(keys, v)
		}
		slices.Sort(keys)
		for _, v := range keys {
			out = append(out, originTerm{kind, v, union(per, of[v], ng)})
		}
	}
	return out
}

// union is the ascending union of the lists ls[i] for i in which (ng
// groups in all).
func union(ls [][]uint32, which []int, ng int) []uint32 {
	if len(which) == 1 {
		return ls[which[0]]
	}
	words := NewBits(ng)
	c := 0
	for _, i := range which {
		for _, g := range ls[i] {
			words.Set(g)
		}
	}
	words.Each(ng, func(int) { c++ })
	l := make([]uint32, 0, c)
	words.Each(ng, func(g int) { l = append(l, uint32(g)) })
	return l
}
