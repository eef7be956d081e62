package query

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand"
	"slices"
	"testing"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/store/segment"
)

// selects is the selection's per-packet answer (fmslice's selection.match
// on the metadata): the reference the index must cover.
func (o *Origins) selects(x segment.Origin) bool {
	if !x.Known {
		return false
	}
	one := func(l []uint64, v uint64, ok bool) bool { return l == nil || ok && slices.Contains(l, v) }
	return one(o.Ports, uint64(x.Port), true) && one(o.Dirs, uint64(x.Dir), true) && one(o.Rules, uint64(x.Rule), true) &&
		one(o.VNIs, x.ID, x.Tunnel == origin.Mirror) && one(o.Endpoints, x.ID, x.Tunnel == origin.GWLB)
}

// An origin selection keeps every group holding a selected packet; with
// one criterion it keeps exactly those; a segment without origin terms
// (version 6) keeps everything.
func TestOriginsPlan(t *testing.T) {
	frames := testpkt.Corpus(t)
	gw1, gw2 := origin.FromGWLB(0xe1, 1, 1), origin.FromGWLB(0xe2, 1, 1)
	m1, m2 := origin.FromMirror(123, []byte{198, 18, 0, 1}), origin.FromMirror(456, []byte{198, 18, 0, 2})
	origs := []segment.Origin{
		segment.OriginOf(0, 1, 1, nil), segment.OriginOf(0, 2, 1, nil), segment.OriginOf(1, 1, 2, &gw1),
		segment.OriginOf(1, 1, 2, &gw2), segment.OriginOf(2, 1, 3, &m1), segment.OriginOf(2, 1, 3, &m2), {},
	}
	rng := rand.New(rand.NewSource(15))
	const n = 4000
	b := segment.NewBuilder(0, 64)
	pk := make([]segment.Origin, n)
	run := origs[0]
	for i := range pk {
		if rng.Intn(40) == 0 {
			run = origs[rng.Intn(len(origs))]
		}
		var p segment.Packet
		DecodePacket(frames[rng.Intn(len(frames))], &p)
		p.Origin, pk[i] = run, run
		b.Add(uint64(i), int64(i), &p)
	}
	enc := b.Encode()
	s, err := segment.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sel   Origins
		exact bool
	}{
		{Origins{Ports: []uint64{1}}, true},
		{Origins{Dirs: []uint64{2}}, true},
		{Origins{Rules: []uint64{3, 1}}, true},
		{Origins{VNIs: []uint64{456}}, true},
		{Origins{Endpoints: []uint64{0xe1}}, true},
		{Origins{Endpoints: []uint64{0xe3}}, true},
		{Origins{Ports: []uint64{70000}}, true}, // fits no key: nothing
		{Origins{Ports: []uint64{0}, Dirs: []uint64{2}}, false},
		{Origins{Ports: []uint64{2}, VNIs: []uint64{123}, Rules: []uint64{3}}, false},
	} {
		got := c.sel.Groups(s)
		want := segment.NewBits(s.Groups())
		for i, x := range pk {
			if c.sel.selects(x) {
				want.Set(s.GroupOf(uint64(i)))
			}
		}
		for g := 0; g < s.Groups(); g++ {
			if want.Has(g) && !got.Has(g) {
				t.Errorf("%+v: group %d holds a selected packet, the plan skips it", c.sel, g)
			}
			if c.exact && got.Has(g) && !want.Has(g) {
				t.Errorf("%+v: group %d kept, no packet of it is selected", c.sel, g)
			}
		}
	}
	if !(*Origins)(nil).Groups(s).All || !(&Origins{}).Groups(s).All {
		t.Error("no selection: not every group")
	}
	old, err := segment.Decode(asVersion6(enc))
	if err != nil {
		t.Fatal(err)
	}
	if !(&Origins{Ports: []uint64{1}}).Groups(old).All {
		t.Error("a version 6 segment (no origin terms): a selection must keep every group")
	}
}

// asVersion6 rewrites a segment as fmcap before origin terms wrote it.
func asVersion6(enc []byte) []byte { return asVersion(enc, 6) }

// asVersion rewrites a version 8 segment as versions 6 or 7 wrote it (the
// same bytes but the flow origins and their offset and CRC in the footer;
// the header's version, its CRC in the footer, the footer's CRC:
// store/segment's format doc). Version 6 had no origin terms, which are
// left in place: it is read without them.
func asVersion(enc []byte, v uint16) []byte {
	le, sum := binary.LittleEndian, func(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
	foot := len(enc) - 8 - 64
	out := slices.Clone(enc[:le.Uint64(enc[foot+48:])])
	f := len(out)
	out = append(out, enc[foot:foot+48]...)
	le.PutUint16(out[4:], v)
	le.PutUint32(out[f+24:], sum(out[:64]))
	out = le.AppendUint32(out, sum(out[f:]))
	return append(out, "XIMF"...)
}
