package segment

// Flow origins (version 8): per flow, its packets at each origin it was
// captured at (fwd's port, direction, rule, tunnel). fmslice flows
// --by-origin splits flows by origin; without this section it had to read
// every frame of its range for the chunks' metadata, with it a segment's
// flows answer as they do for plain fmslice flows.
//
// The builder already keys each distinct origin once (origin.go). A flow
// keeps its first packet's origin in its own entry, which the packet
// updates anyway: most flows have one origin, and their packets touch
// nothing more (their packets and bytes there are the flow's, less its
// other origins'). Other origins (a flow captured in both directions) are
// a short chain of (origin, figures) entries in one shared slice, found by
// walking it: no map lookup, no allocation beyond the slice's amortised
// growth. A packet whose origin is not known counts in an entry of its own
// (origin 0 in the file), as fmslice shows it.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/fmcap/fmcap/internal/origin"
)

// flowOrigin is a flow's figures at one origin while building.
type flowOrigin struct {
	next        int32 // the flow's next entry, index + 1 (0: none)
	orig        int32 // the origin's index + 1 (0: not known)
	flags       uint8
	pkts, bytes uint64
	first, last int64
}

// flowOrigin counts a packet of flow f (counted in f already) at origin oi
// (its index + 1, 0: not known).
func (b *Builder) flowOrigin(f *Flow, oi int32, ts int64, wire uint32, flags uint8) {
	if oi == f.o0 {
		f.o0Flags |= flags
		f.o0First, f.o0Last = min(f.o0First, ts), max(f.o0Last, ts)
		return
	}
	e := f.oHead
	for e != 0 && b.fo[e-1].orig != oi {
		e = b.fo[e-1].next
	}
	if e == 0 {
		b.fo = append(b.fo, flowOrigin{next: f.oHead, orig: oi, first: ts, last: ts})
		e = int32(len(b.fo))
		f.oHead = e
	}
	x := &b.fo[e-1]
	x.flags |= flags
	x.pkts++
	x.bytes += uint64(wire)
	x.first, x.last = min(x.first, ts), max(x.last, ts)
}

// appendFlowOrigins appends the flow origins section: the distinct origins,
// then each flow's entries (fl in the file's order), by origin.
func (b *Builder) appendFlowOrigins(out []byte, fl []*Flow) []byte {
	le := binary.LittleEndian
	out = binary.AppendUvarint(out, uint64(len(b.origKeys)))
	for i := range b.origKeys {
		o := &b.origKeys[i]
		out = le.AppendUint16(out, o.Port)
		out = append(out, o.Dir)
		out = le.AppendUint32(out, o.Rule)
		out = append(out, byte(o.Full.Kind), o.Full.N)
		out = append(out, o.Full.Bytes()...)
	}
	var es []flowOrigin
	for _, f := range fl {
		first := flowOrigin{orig: f.o0, flags: f.o0Flags, pkts: f.Packets, bytes: f.Bytes, first: f.o0First, last: f.o0Last}
		es = es[:0]
		for e := f.oHead; e != 0; e = b.fo[e-1].next {
			x := b.fo[e-1]
			first.pkts -= x.pkts
			first.bytes -= x.bytes
			es = append(es, x)
		}
		es = append(es, first)
		slices.SortFunc(es, func(x, y flowOrigin) int { return int(x.orig) - int(y.orig) })
		out = binary.AppendUvarint(out, uint64(len(es)))
		for _, x := range es {
			out = binary.AppendUvarint(out, uint64(x.orig))
			out = append(out, x.flags)
			out = binary.AppendUvarint(out, x.pkts)
			out = binary.AppendUvarint(out, x.bytes)
			out = binary.AppendUvarint(out, uint64(x.first-f.First))
			out = binary.AppendUvarint(out, uint64(x.last-x.first))
		}
	}
	return out
}

// FlowOrigin is a flow's packets at one origin in a segment.
type FlowOrigin struct {
	Origin      int // index in the segment's origins (FlowOrigins); -1: not known
	Flags       uint8
	Packets     uint64
	Bytes       uint64
	First, Last int64
}

// HasFlowOrigins says whether the segment holds flow origins (version 8):
// an older one cannot answer fmslice flows --by-origin, whose range is
// then read from the chunks.
func (s *Segment) HasFlowOrigins() bool { return s.version >= 8 }

// FlowOrigins checks and decodes the flow origins: the segment's distinct
// origins, and for each flow of table (its FlowTable, in its order) its
// entries. A flow's entries add up to its figures; a section where they do
// not is refused, as is any other damage (and Err says so).
func (s *Segment) FlowOrigins(table []Flow) (origins []Origin, per [][]FlowOrigin, err error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	if !s.HasFlowOrigins() {
		return nil, nil, fmt.Errorf("%s: no flow origins (a version %d segment)", s.Name, s.version)
	}
	if !s.forigOK {
		if crc32.Checksum(s.forig, crcTable) != s.forigSum {
			s.fail("flow origins")
			return nil, nil, s.err
		}
		s.forigOK = true
	}
	origins, per, err = decodeFlowOrigins(s.forig, table)
	if err != nil {
		s.fail(err.Error())
		return nil, nil, s.err
	}
	return origins, per, nil
}

// Smallest encodings: an origin (port, direction, rule, kind, length, no
// blob) and an entry (six one-byte fields); counts claiming more than the
// bytes allow are refused before anything is allocated for them.
const (
	minOrigin     = 9
	minFlowOrigin = 6
)

// decodeFlowOrigins decodes a flow origins section for the flows of table.
func decodeFlowOrigins(p []byte, table []Flow) ([]Origin, [][]FlowOrigin, error) {
	bad := func(what string) ([]Origin, [][]FlowOrigin, error) {
		return nil, nil, fmt.Errorf("flow origins: %s", what)
	}
	le := binary.LittleEndian
	n, p, ok := uvarint(p)
	if !ok || n > uint64(len(p))/minOrigin {
		return bad("origin count")
	}
	origins := make([]Origin, n)
	for i := range origins {
		if len(p) < minOrigin || len(p) < minOrigin+int(p[8]) {
			return bad("origin")
		}
		full, err := origin.Parse(origin.Kind(p[7]), p[minOrigin:minOrigin+int(p[8])])
		if err != nil {
			return bad(err.Error())
		}
		origins[i] = OriginOf(le.Uint16(p), p[2], le.Uint32(p[3:]), &full)
		p = p[minOrigin+int(p[8]):]
	}
	per := make([][]FlowOrigin, len(table))
	var all []FlowOrigin // one backing array for every flow's entries
	for i := range table {
		f := &table[i]
		ne, rest, ok := uvarint(p)
		if !ok || ne == 0 || ne > uint64(len(rest))/minFlowOrigin {
			return bad("entry count")
		}
		p = rest
		if all == nil {
			all = make([]FlowOrigin, 0, len(p)/minFlowOrigin)
		}
		start := len(all)
		var pkts, bytes uint64
		for j := uint64(0); j < ne; j++ {
			var o, first, dur uint64
			var e FlowOrigin
			if o, p, ok = uvarint(p); !ok || o > n || len(p) == 0 {
				return bad("entry's origin")
			}
			e.Origin, e.Flags, p = int(o)-1, p[0], p[1:]
			var ok1, ok2, ok3, ok4 bool
			e.Packets, p, ok1 = uvarint(p)
			e.Bytes, p, ok2 = uvarint(p)
			first, p, ok3 = uvarint(p)
			dur, p, ok4 = uvarint(p)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return bad("entry")
			}
			e.First = f.First + int64(first)
			e.Last = e.First + int64(dur)
			if e.Packets == 0 || e.First < f.First || e.First > f.Last || e.Last > f.Last || e.Last < e.First || e.Flags&^f.Flags != 0 ||
				j > 0 && all[len(all)-1].Origin >= e.Origin {
				return bad("entry out of its flow's bounds or order")
			}
			pkts, bytes = pkts+e.Packets, bytes+e.Bytes
			all = append(all, e)
		}
		if pkts != f.Packets || bytes != f.Bytes {
			return bad("entries that do not add up to their flow")
		}
		per[i] = all[start:len(all):len(all)]
	}
	if len(p) != 0 {
		return bad("bytes after the last flow")
	}
	return origins, per, nil
}
