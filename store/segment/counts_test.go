package segment

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand"
	"testing"

	"github.com/fmcap/fmcap/internal/testpkt"
)

type gf struct {
	k FlowKey
	g uint32
}

// buildCounted builds a segment from the corpus in random order with
// random wire lengths, and what its counts must be.
func buildCounted(t testing.TB) (enc []byte, gpk, gby []uint64, fc map[gf][2]uint64) {
	frames := testpkt.Corpus(t)
	rng := rand.New(rand.NewSource(13))
	const first, n, G = 5, 6000, 16
	b := NewBuilder(first, G)
	ng := (first+n-1)/G - first/G + 1
	gpk, gby = make([]uint64, ng), make([]uint64, ng)
	fc = map[gf][2]uint64{}
	for i := 0; i < n; i++ {
		var p Packet
		DecodePacket(frames[rng.Intn(len(frames))], &p)
		p.Wire = uint32(60 + rng.Intn(9000))
		seq := uint64(first + i)
		b.Add(seq, int64(i), &p)
		g := b.seg.GroupOf(seq)
		gpk[g]++
		gby[g] += uint64(p.Wire)
		if k, _, ok := KeyOf(&p); ok {
			c := fc[gf{k, g}]
			fc[gf{k, g}] = [2]uint64{c[0] + 1, c[1] + uint64(p.Wire)}
		}
	}
	return b.Encode(), gpk, gby, fc
}

// Every group's packets and bytes, and every flow's in each of its
// groups, come back exactly as built.
func TestCountsExact(t *testing.T) {
	enc, gpk, gby, fc := buildCounted(t)
	s, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasCounts() {
		t.Fatal("no counts in a version 6 segment")
	}
	seen := 0
	if err := s.GroupCounts(func(g int, pk, by uint64) {
		seen++
		if pk != gpk[g] || by != gby[g] {
			t.Fatalf("group %d: got %d packets %d bytes, want %d %d", g, pk, by, gpk[g], gby[g])
		}
	}); err != nil {
		t.Fatal(err)
	}
	if seen != len(gpk) {
		t.Fatalf("%d groups counted, want %d", seen, len(gpk))
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	if err := s.FlowCounts(table, func(f int, g uint32, pk, by uint64) {
		pairs++
		if w := fc[gf{table[f].FlowKey, g}]; pk != w[0] || by != w[1] {
			t.Fatalf("flow %+v group %d: got %d packets %d bytes, want %v", table[f].FlowKey, g, pk, by, w)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if pairs != len(fc) {
		t.Fatalf("%d (flow, group) counts, want %d", pairs, len(fc))
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// A damaged byte in the flows' counts fails their check, and only theirs;
// one in the groups' counts fails those.
func TestCountsDamage(t *testing.T) {
	enc, _, _, _ := buildCounted(t)
	le := binary.LittleEndian
	foot := len(enc) - 8 - footerSize
	flowsOff := int(le.Uint64(enc[foot+16:]))
	b := append([]byte(nil), enc...)
	b[flowsOff-3] ^= 0x40 // within the flows' counts
	s, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v (damage in the counts shows when they are read)", err)
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatalf("FlowTable: %v", err)
	}
	if err := s.GroupCounts(func(int, uint64, uint64) {}); err != nil {
		t.Fatalf("GroupCounts: %v (the damage is in the flows' counts)", err)
	}
	if err := s.FlowCounts(table, func(int, uint32, uint64, uint64) {}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FlowCounts: %v, want ErrCorrupt", err)
	}
	dirOff := int(le.Uint64(enc[foot+8:]))
	nterms := int(le.Uint32(enc[52:]))
	countsOff := dirOff + nterms*dirEntry + 4*((nterms+dirBlock-1)/dirBlock)
	b = append([]byte(nil), enc...)
	b[countsOff+1] ^= 0x01 // the first group's bytes
	if s, err = Decode(b); err != nil {
		t.Fatal(err)
	}
	if err := s.GroupCounts(func(int, uint64, uint64) {}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GroupCounts: %v, want ErrCorrupt", err)
	}
}

// toV5 rewrites a segment as version 5 wrote it: no counts, zero where
// their CRC is.
func toV5(enc []byte) []byte {
	enc = toV7(enc)
	le := binary.LittleEndian
	foot := len(enc) - 8 - footerSize7
	dirOff, flowsOff := int(le.Uint64(enc[foot+8:])), int(le.Uint64(enc[foot+16:]))
	nterms := int(le.Uint32(enc[52:]))
	countsOff := dirOff + nterms*dirEntry + 4*((nterms+dirBlock-1)/dirBlock)
	out := append([]byte(nil), enc[:countsOff]...)
	out = append(out, enc[flowsOff:foot+footerSize7]...)
	le.PutUint16(out[4:], 5)
	f := len(out) - footerSize7
	le.PutUint64(out[f+16:], uint64(countsOff))
	le.PutUint32(out[f+24:], crc32.Checksum(out[:hdrSize], crcTable))
	le.PutUint32(out[f+44:], 0)
	out = le.AppendUint32(out, crc32.Checksum(out[f:], crcTable))
	return append(out, trailMagic...)
}

// Version 5 segments stay readable: everything but the counts.
func TestVersion5Readable(t *testing.T) {
	enc, _, _, fc := buildCounted(t)
	s, err := Decode(toV5(enc))
	if err != nil {
		t.Fatal(err)
	}
	if s.HasCounts() {
		t.Fatal("a version 5 segment claims counts")
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	pairs := 0
	for _, f := range table {
		pairs += len(f.Groups)
	}
	if pairs != len(fc) {
		t.Fatalf("%d (flow, group) pairs, want %d", pairs, len(fc))
	}
	if err := s.GroupCounts(func(int, uint64, uint64) {}); err == nil {
		t.Fatal("GroupCounts of a version 5 segment: no error")
	}
}

// FlowGroups sets exactly the groups of the flows it is asked for, as the
// flow table lists them, stepping over the others.
func TestFlowGroups(t *testing.T) {
	enc, _, _, _ := buildCounted(t)
	s, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, pick := range []func(k *FlowKey) bool{
		func(k *FlowKey) bool { return k.Proto == 17 },
		func(k *FlowKey) bool { return k.Kind == IPv6 },
		func(k *FlowKey) bool { return k.APort%3 == 0 },
		func(k *FlowKey) bool { return false },
	} {
		want := NewBits(s.Groups())
		nw := 0
		for i := range table {
			if pick(&table[i].FlowKey) {
				for _, g := range table[i].Groups {
					want.Set(g)
				}
				nw++
			}
		}
		got := NewBits(s.Groups())
		if err := s.FlowGroups(pick, got); err != nil {
			t.Fatal(err)
		}
		for i := range want.W {
			if got.W[i] != want.W[i] {
				t.Fatalf("word %d: got %x want %x (%d flows picked)", i, got.W[i], want.W[i], nw)
			}
		}
	}
}

// FlowCountsOf hands exactly what FlowCounts hands for the flows picked,
// with their class, and nothing for the others.
func TestFlowCountsOf(t *testing.T) {
	enc, _, _, _ := buildCounted(t)
	s, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	class := func(k *FlowKey) uint8 {
		switch {
		case k.Proto == 17:
			return 1
		case k.Kind == IPv6:
			return 2
		}
		return 0
	}
	type rec struct {
		c     uint8
		g     uint32
		pk, b uint64
	}
	var want, got []rec
	if err := s.FlowCounts(table, func(f int, g uint32, pk, by uint64) {
		if c := class(&table[f].FlowKey); c != 0 {
			want = append(want, rec{c, g, pk, by})
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.FlowCountsOf(class, func(c uint8, g uint32, pk, by uint64) { got = append(got, rec{c, g, pk, by}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) < 20 {
		t.Fatalf("%d counts, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("count %d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

// FuzzCounts: counts (and flows) that pass their CRC but hold anything
// never panic a reader; they decode or fail with ErrCorrupt.
func FuzzCounts(f *testing.F) {
	enc, _, _, _ := buildCounted(f)
	enc = toV7(enc) // the flows end at the footer (version 8's flow origins: FuzzFlowOrigins)
	le := binary.LittleEndian
	foot := len(enc) - 8 - footerSize7
	dirOff, flowsOff := int(le.Uint64(enc[foot+8:])), int(le.Uint64(enc[foot+16:]))
	nterms := int(le.Uint32(enc[52:]))
	countsOff := dirOff + nterms*dirEntry + 4*((nterms+dirBlock-1)/dirBlock)
	s0, err := Decode(enc)
	if err != nil {
		f.Fatal(err)
	}
	flowCountsOff := countsOff + groupCountsLen(enc[countsOff:flowsOff], s0.Groups())
	f.Add(enc[flowCountsOff:flowsOff], uint16(0))
	f.Add([]byte{1, 2, 0x80}, uint16(3))
	f.Fuzz(func(t *testing.T, counts []byte, cut uint16) {
		// The segment with these flows' counts, their CRC made right.
		b := append([]byte(nil), enc[:flowCountsOff]...)
		b = append(b, counts...)
		nf := len(b)
		b = append(b, enc[flowsOff:foot]...)
		if int(cut) < foot-flowsOff && cut > 0 {
			b = b[:nf+int(cut)] // flows cut short, their CRC made right too
		}
		ft := len(b)
		b = append(b, enc[foot:foot+footerSize7]...)
		le.PutUint64(b[ft+16:], uint64(nf))
		le.PutUint32(b[ft+40:], crc32.Checksum(b[nf:ft], crcTable))
		le.PutUint32(b[ft+44:], crc32.Checksum(counts, crcTable))
		b = le.AppendUint32(b, crc32.Checksum(b[ft:], crcTable))
		b = append(b, trailMagic...)
		s, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		table, _ := s.FlowTable()
		if err := s.GroupCounts(func(int, uint64, uint64) {}); err == nil {
			s.FlowCounts(table, func(int, uint32, uint64, uint64) {})
		}
		s2, _ := Decode(b)
		s2.FlowCountsOf(func(k *FlowKey) uint8 { return k.Proto & 3 }, func(uint8, uint32, uint64, uint64) {})
		s3, _ := Decode(b)
		if err := s3.Verify(); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Verify: %v", err)
		}
	})
}
