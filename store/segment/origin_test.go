package segment

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand"
	"slices"
	"testing"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/internal/testpkt"
)

// testOrigins are the origins TestOriginTerms draws from: plain ports in
// both directions, two GWLB endpoints, two mirror sessions, and one a
// blob-less mirror would be (not tunnelled).
func testOrigins() []Origin {
	gw1, gw2 := origin.FromGWLB(0x0123456789abcdef, 1, 7), origin.FromGWLB(0xfedcba9876543210, 2, 8)
	m1, m2 := origin.FromMirror(123, []byte{198, 18, 0, 1}), origin.FromMirror(0xffffff, []byte{198, 18, 0, 2})
	return []Origin{
		OriginOf(0, 1, 1, nil), OriginOf(1, 2, 1, nil), OriginOf(0, 3, 70000, nil),
		OriginOf(2, 1, 5, &gw1), OriginOf(2, 1, 5, &gw2), OriginOf(3, 1, 9, &m1), OriginOf(3, 1, 9, &m2),
		OriginOf(65535, 2, 0xffffffff, &origin.Origin{}),
	}
}

// Every origin term lists exactly the groups holding a packet with that
// value; packets of unknown origin add to none; the terms come in the
// directory's order (Decode and the reader check it).
func TestOriginTerms(t *testing.T) {
	frames := testpkt.Corpus(t)
	orig := testOrigins()
	rng := rand.New(rand.NewSource(14))
	const first, n, G = 3, 5000, 16
	b := NewBuilder(first, G)
	type term struct {
		kind byte
		v    uint64
	}
	want := map[term][]uint32{}
	for i := 0; i < n; i++ {
		var p Packet
		DecodePacket(frames[rng.Intn(len(frames))], &p)
		if rng.Intn(10) > 0 { // a tenth unknown
			p.Origin = orig[(i/50+rng.Intn(2))%len(orig)] // in runs, as ports and tunnels come
		}
		seq := uint64(first + i)
		b.Add(seq, int64(i), &p)
		g := b.seg.GroupOf(seq)
		for _, k := range originKinds {
			if v, ok := p.Origin.value(k); ok && p.Origin.Known {
				if l := want[term{k, v}]; len(l) == 0 || l[len(l)-1] != g {
					want[term{k, v}] = append(l, g)
				}
			}
		}
	}
	s, err := Decode(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasOrigins() {
		t.Fatal("a version 8 segment says it has no origin terms")
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, k := range originKinds {
		s.Terms(k, func(key []byte, groups func() []uint32) {
			var v uint64
			for _, c := range key {
				v = v<<8 | uint64(c)
			}
			got++
			if l := groups(); !slices.Equal(l, want[term{k, v}]) {
				t.Errorf("term %c %d: got groups %v want %v", k, v, l, want[term{k, v}])
			}
		})
	}
	if got != len(want) {
		t.Fatalf("%d origin terms, want %d", got, len(want))
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}

	// The same bytes as version 6 wrote them: readable, without origin terms.
	v6 := withVersion(toV7(b.Encode()), 6)
	if s, err = Decode(v6); err != nil {
		t.Fatal(err)
	}
	if s.HasOrigins() {
		t.Fatal("a version 6 segment claims origin terms")
	}
}

// withVersion relabels a segment of versions 5 to 7 (toV7) with another
// of them (its CRCs redone).
func withVersion(enc []byte, v uint16) []byte {
	le := binary.LittleEndian
	out := append([]byte(nil), enc...)
	le.PutUint16(out[4:], v)
	f := len(out) - 8 - footerSize7
	le.PutUint32(out[f+24:], crc32.Checksum(out[:hdrSize], crcTable))
	le.PutUint32(out[f+footerSize7:], crc32.Checksum(out[f:f+footerSize7], crcTable))
	return out
}

// toV7 rewrites a segment as version 7 wrote it: no flow origins, the
// footer without their offset and CRC.
func toV7(enc []byte) []byte {
	le := binary.LittleEndian
	foot := len(enc) - 8 - footerSize
	forigOff := int(le.Uint64(enc[foot+48:]))
	out := append([]byte(nil), enc[:forigOff]...)
	f := len(out)
	out = append(out, enc[foot:foot+footerSize7]...)
	le.PutUint16(out[4:], 7)
	le.PutUint32(out[f+24:], crc32.Checksum(out[:hdrSize], crcTable))
	out = le.AppendUint32(out, crc32.Checksum(out[f:], crcTable))
	return append(out, trailMagic...)
}

// OriginKey is big-endian in the kind's width and refuses what does not fit.
func TestOriginKey(t *testing.T) {
	for _, c := range []struct {
		kind byte
		v    uint64
		want []byte // nil: refused
	}{
		{KindDir, 2, []byte{2}},
		{KindDir, 256, nil},
		{KindIface, 0x0102, []byte{1, 2}},
		{KindIface, 65536, nil},
		{KindVNI, 0xffffff, []byte{0xff, 0xff, 0xff}},
		{KindVNI, 1 << 24, nil},
		{KindRule, 0x01020304, []byte{1, 2, 3, 4}},
		{KindRule, 1 << 32, nil},
		{KindEndpoint, 0x0123456789abcdef, []byte{1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}},
		{KindAddr, 1, nil},
	} {
		got, ok := OriginKey(c.kind, c.v)
		if ok != (c.want != nil) || !slices.Equal(got, c.want) {
			t.Errorf("OriginKey(%c, %#x): got %x %v want %x", c.kind, c.v, got, ok, c.want)
		}
	}
}
