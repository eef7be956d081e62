package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"slices"
	"testing"

	"github.com/fmcap/fmcap/internal/testpkt"
)

func TestSegmentRoundTripAndDamage(t *testing.T) {
	frames := testpkt.Corpus(t)
	b := NewBuilder(1000, 8)
	for i, f := range frames {
		if i == 10 {
			b.Gap(1010, 1019) // ten seqs the indexer never saw
			continue
		}
		if i > 10 && i < 20 {
			continue
		}
		var p Packet
		DecodePacket(f, &p)
		b.Add(1000+uint64(i), int64(1e9+i), &p)
	}
	dir := t.TempDir()
	name, err := b.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := List(dir)
	if len(list) != 1 || list[0].Name != name || list[0].First != 1000 || list[0].Last != uint64(1000+len(frames)-1) {
		t.Fatalf("list %+v", list)
	}
	s, err := Open(dir, list[0])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if len(s.Gaps) != 1 || s.Gaps[0] != [2]uint64{1010, 1019} || s.Indexed != uint64(len(frames)-10) {
		t.Errorf("gaps %v indexed %d", s.Gaps, s.Indexed)
	}
	if fl, err := s.FlowTable(); err != nil || len(fl) < 10 {
		t.Errorf("flows: %d, %v", len(fl), err)
	}
	if l, ok := s.Postings(KindKind, []byte{byte(IPv6)}); !ok || len(l) == 0 {
		t.Errorf("no IPv6 postings")
	}
	enc := b.Encode()
	// Every truncation is refused on opening; every single bit flip on
	// opening or, in a part read lazily, by Verify.
	for n := 0; n < len(enc); n += 1 + len(enc)/200 {
		if _, err := Decode(enc[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	for i := 0; i < len(enc); i++ {
		d := bytes.Clone(enc)
		d[i] ^= 0x10
		s, err := Decode(d)
		if err == nil {
			err = s.Verify()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit flip at %d accepted", i)
		}
	}
	// A flip in one posting list: the term that reads it fails (ok false,
	// Err set); the segment opened fine, so only Err tells the caller.
	s, err = Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := s.Postings(KindKind, []byte{byte(IPv6)})
	if !ok || len(l) == 0 {
		t.Fatal("no IPv6 postings")
	}
	le := binary.LittleEndian
	foot := enc[len(enc)-8-footerSize:]
	postOff, dirOff := le.Uint64(foot), le.Uint64(foot[8:])
	var at uint64
	for i := dirOff; ; i += dirEntry {
		if e := enc[i:]; e[0] == KindKind && e[4] == byte(IPv6) {
			at = postOff + uint64(le.Uint32(e[20:]))
			break
		}
	}
	d := bytes.Clone(enc)
	d[at+1] ^= 1 // the first group's delta
	s, err = Decode(d)
	if err != nil {
		t.Fatalf("a posting list flip refused on opening: %v", err)
	}
	if _, ok := s.Postings(KindKind, []byte{byte(IPv4)}); !ok || s.Err() != nil {
		t.Fatalf("IPv4 postings: ok %v err %v", ok, s.Err())
	}
	if _, ok := s.Postings(KindKind, []byte{byte(IPv6)}); ok || !errors.Is(s.Err(), ErrCorrupt) {
		t.Fatalf("damaged IPv6 postings: ok %v err %v", ok, s.Err())
	}
}

// BenchmarkIndex is the indexer's per-packet work on the generated mix's
// shapes: decode and add to a segment (groups, terms), one core.
func BenchmarkIndex(b *testing.B) { benchIndex(b, nil) }

// BenchmarkIndexOrigins is BenchmarkIndex with every packet's origin
// known, changing every 100 packets among testOrigins' eight (as the
// live indexer gets them from the ring).
func BenchmarkIndexOrigins(b *testing.B) { benchIndex(b, testOrigins()) }

func benchIndex(b *testing.B, origins []Origin) {
	frames := testpkt.Corpus(b)
	b.ReportAllocs()
	bl := NewBuilder(1, DefaultGroupSize)
	var p Packet
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		DecodePacket(frames[i%len(frames)], &p)
		if origins != nil {
			p.Origin = origins[i/100%len(origins)]
		}
		if bl.Count() == 1<<20 {
			bl = NewBuilder(bl.Next(), DefaultGroupSize)
		}
		bl.Add(bl.Next(), int64(i), &p)
	}
}

// Groups start at multiples of the group size, not at the segment's first
// seq: a segment from 1003 with groups of 8 has groups 1003-1007,
// 1008-1015, 1016-1020.
func TestGroupsAlignedOnSeqs(t *testing.T) {
	b := NewBuilder(1003, 8)
	var p Packet
	for s := uint64(1003); s <= 1020; s++ {
		b.Add(s, int64(s), &p)
	}
	s, err := Decode(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{{1003, 1007}, {1008, 1015}, {1016, 1020}}
	if s.Groups() != len(want) {
		t.Fatalf("%d groups, want %d", s.Groups(), len(want))
	}
	for g, w := range want {
		lo, hi := s.GroupSeqs(uint32(g))
		tlo, thi := s.GroupTimes(g)
		if lo != w[0] || hi != w[1] || s.GroupOf(lo) != uint32(g) || s.GroupOf(hi) != uint32(g) || tlo != int64(lo) || thi != int64(hi) {
			t.Errorf("group %d: seqs %d-%d times %d-%d, want %v", g, lo, hi, tlo, thi, w)
		}
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

// Address and port lists are derived at Encode from the flows' groups and
// merged with those of packets outside flows (ARP, frames cut before their
// destination): each list must be exactly the groups a naive pass over the
// packets finds, for every address and port.
func TestTermListsExact(t *testing.T) {
	// Group size 8: terms of many flows merge through a bitmap; 1: there are
	// 20 000 groups, and the unions of a few short lists are sorted.
	frames := testpkt.Corpus(t)
	// Frames cut after the source address: outside flows, source only.
	for _, f := range frames[:200] {
		var p Packet
		DecodePacket(f, &p)
		if p.Kind == IPv4 && p.Addrs && p.VLAN == 0 && len(f) >= 30 {
			frames = append(frames, bytes.Clone(f[:30]))
		}
	}
	for _, gs := range []uint32{8, 1} {
		t.Run(fmt.Sprint("corpus-groupsize", gs), func(t *testing.T) {
			rng := rand.New(rand.NewSource(5))
			kinds := map[Kind]int{}
			outside := 0
			termListsExact(t, gs, 20000, func(i int, p *Packet) {
				DecodePacket(frames[rng.Intn(len(frames))], p)
				kinds[p.Kind]++
				if !p.Addrs && (p.SrcOK || p.DstOK) || p.Kind == ARP {
					outside++
				}
			})
			if kinds[IPv4] == 0 || kinds[IPv6] == 0 || kinds[ARP] == 0 || outside < 100 {
				t.Fatalf("corpus lacks variety: %v, %d packets outside flows", kinds, outside)
			}
		})
	}
	// A server (198.18.0.1:443) that a few clients reach with a few packets
	// each, two of them in the same group, and that ARP names too, among
	// many packets of 300 other flows to port 443: its address's list is
	// short and sorted together, port 443's long and merged by bitmap.
	server := Map4([4]byte{198, 18, 0, 1})
	t.Run("short-and-long-unions", func(t *testing.T) {
		// 30 000 groups: a union under 30000/512 groups is sorted.
		termListsExact(t, 2, 60000, func(i int, p *Packet) {
			*p = Packet{Kind: IPv4, Proto: 6, Addrs: true, SrcOK: true, DstOK: true, Ports: true, DPort: 443}
			switch {
			case i >= 30000:
				k := byte(i % 300)
				p.Src, p.Dst, p.SPort = Map4([4]byte{198, 19, 2, k}), Map4([4]byte{198, 18, 1, k}), 50000+uint16(k)
			case i%5000 == 16 || i%5000 == 17 || i%5000 == 1000 || i%5000 == 2501:
				// Two clients, in one group (seqs 716 and 717 and so on) and
				// each in groups of its own.
				p.Src, p.Dst, p.SPort = Map4([4]byte{198, 19, 1, byte(i % 2)}), server, 40000+uint16(i%2)
			case i%7000 == 100:
				*p = Packet{Kind: ARP, Addrs: true, SrcOK: true, DstOK: true, Src: server, Dst: Map4([4]byte{198, 18, 0, 9})}
			default:
				k := byte(i % 300)
				p.Src, p.Dst, p.SPort = Map4([4]byte{198, 19, 2, k}), Map4([4]byte{198, 18, 1, k}), 50000+uint16(k)
			}
		})
	})
}

// termListsExact adds n packets (src fills each in) and checks every
// address and port list against a naive pass.
func termListsExact(t *testing.T, groupSize uint32, n int, src func(i int, p *Packet)) {
	const first = 700
	b := NewBuilder(first, groupSize)
	addrs := map[[16]byte]map[uint32]bool{}
	ports := map[uint16]map[uint32]bool{}
	note := func(m map[[16]byte]map[uint32]bool, k [16]byte, g uint32) {
		if m[k] == nil {
			m[k] = map[uint32]bool{}
		}
		m[k][g] = true
	}
	for i := 0; i < n; i++ {
		var p Packet
		src(i, &p)
		seq := uint64(first + i)
		b.Add(seq, int64(i), &p)
		g := b.seg.GroupOf(seq)
		if p.Kind == Other {
			continue
		}
		if p.SrcOK {
			note(addrs, p.Src, g)
		}
		if p.DstOK {
			note(addrs, p.Dst, g)
		}
		if p.Ports && p.Kind != ARP {
			for _, v := range []uint16{p.SPort, p.DPort} {
				if ports[v] == nil {
					ports[v] = map[uint32]bool{}
				}
				ports[v][g] = true
			}
		}
	}
	s, err := Decode(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	want := func(m map[uint32]bool) []uint32 {
		var l []uint32
		for g := range m {
			l = append(l, g)
		}
		slices.Sort(l)
		return l
	}
	for a, m := range addrs {
		if got, ok := s.Postings(KindAddr, a[:]); !ok || !slices.Equal(got, want(m)) {
			t.Fatalf("address %s: groups %v, want %v", AddrString(a), got, want(m))
		}
	}
	for v, m := range ports {
		if got, ok := s.Postings(KindPort, []byte{byte(v >> 8), byte(v)}); !ok || !slices.Equal(got, want(m)) {
			t.Fatalf("port %d: groups %v, want %v", v, got, want(m))
		}
	}
	na, np := 0, 0
	s.Terms(KindAddr, func([]byte, func() []uint32) { na++ })
	s.Terms(KindPort, func([]byte, func() []uint32) { np++ })
	if na != len(addrs) || np != len(ports) {
		t.Fatalf("%d address and %d port terms, want %d and %d", na, np, len(addrs), len(ports))
	}
}

// Prefetch changes nothing but speed: the same packets added with and
// without it (batches of 16, as the live indexer does) give the same bytes.
func TestPrefetchSameSegment(t *testing.T) {
	frames := testpkt.Corpus(t)
	rng := rand.New(rand.NewSource(8))
	const first, n = 64, 5000
	pick := make([]int, n)
	for i := range pick {
		pick[i] = rng.Intn(len(frames))
	}
	plain, pre := NewBuilder(first, 8), NewBuilder(first, 8)
	batch := make([]Packet, 16)
	ptrs := make([]*Packet, 16)
	for i := 0; i < n; i += len(batch) {
		k := min(len(batch), n-i)
		for j := 0; j < k; j++ {
			var p Packet
			DecodePacket(frames[pick[i+j]], &p)
			plain.Add(uint64(first+i+j), int64(i+j), &p)
			DecodePacket(frames[pick[i+j]], &batch[j])
			ptrs[j] = &batch[j]
		}
		pre.Prefetch(ptrs[:k])
		for j := 0; j < k; j++ {
			if batch[j].Addrs && (batch[j].Kind == IPv4 || batch[j].Kind == IPv6) && !batch[j].keyed {
				t.Fatalf("packet %d: Prefetch left it without its flow key", i+j)
			}
			pre.Add(uint64(first+i+j), int64(i+j), &batch[j])
		}
	}
	if a, b := plain.Encode(), pre.Encode(); !bytes.Equal(a, b) {
		t.Fatalf("segments differ with Prefetch (%d and %d bytes)", len(a), len(b))
	}
	if len(pre.flows) < 20 {
		t.Fatalf("only %d flows: the test says little", len(pre.flows))
	}
}

// The flow table comes back exactly as built: keys (IPv4 ones stored in 4
// bytes), counts, flags, first and last times (stored against the
// segment's minimum, times not monotonic) and groups.
func TestFlowTableExact(t *testing.T) {
	frames := testpkt.Corpus(t)
	rng := rand.New(rand.NewSource(11))
	const first, n = 3, 8000
	b := NewBuilder(first, 16)
	want := map[FlowKey]*Flow{}
	ts := int64(1_764_000_000_000_000_000)
	for i := 0; i < n; i++ {
		var p Packet
		DecodePacket(frames[rng.Intn(len(frames))], &p)
		p.Wire = uint32(60 + rng.Intn(1500))
		ts += int64(rng.Intn(3_000_000)) - 1_000_000
		seq := uint64(first + i)
		b.Add(seq, ts, &p)
		if !p.Addrs || p.Kind != IPv4 && p.Kind != IPv6 {
			continue
		}
		k := flowKey(&p)
		f := want[k]
		if f == nil {
			f = &Flow{FlowKey: k, First: ts, Last: ts}
			want[k] = f
		}
		f.Packets++
		f.Bytes += uint64(p.Wire)
		f.First, f.Last = min(f.First, ts), max(f.Last, ts)
		if p.Proto == 6 && p.Ports {
			f.Flags |= p.TCPFlags
		}
		if g := b.seg.GroupOf(seq); len(f.Groups) == 0 || f.Groups[len(f.Groups)-1] != g {
			f.Groups = append(f.Groups, g)
		}
	}
	s, err := Decode(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.FlowTable()
	if err != nil || len(got) != len(want) {
		t.Fatalf("%d flows, %v; want %d", len(got), err, len(want))
	}
	v4, v6 := 0, 0
	for _, g := range got {
		w := want[g.FlowKey]
		if w == nil || g.Packets != w.Packets || g.Bytes != w.Bytes || g.First != w.First || g.Last != w.Last ||
			g.Flags != w.Flags || !slices.Equal(g.Groups, w.Groups) {
			t.Fatalf("flow %+v: got %d pkts %d bytes %d..%d flags %x groups %v; want %+v", g.FlowKey, g.Packets, g.Bytes, g.First, g.Last, g.Flags, g.Groups, w)
		}
		if g.Kind == IPv4 {
			v4++
		} else {
			v6++
		}
	}
	if v4 < 10 || v6 < 2 {
		t.Fatalf("%d IPv4 and %d IPv6 flows: the corpus says little", v4, v6)
	}
}

// Flows that pass their CRC but do not decode (a writer's bug, or another
// layout under the same version) make Verify fail, not pass.
func TestVerifyDecodesFlows(t *testing.T) {
	frames := testpkt.Corpus(t)
	b := NewBuilder(0, 8)
	for i, f := range frames[:200] {
		var p Packet
		DecodePacket(f, &p)
		b.Add(uint64(i), int64(i), &p)
	}
	enc := b.Encode()
	le := binary.LittleEndian
	foot := len(enc) - 8 - footerSize
	flowsOff := int(le.Uint64(enc[foot+16:]))
	flows := enc[flowsOff:foot]
	n, k := binary.Uvarint(flows)
	if n < 2 || k != 1 {
		t.Fatalf("%d flows (%d-byte count): test needs a few, and a one-byte count", n, k)
	}
	flows[0]++ // one flow more than there are: the last one runs out of bytes
	le.PutUint32(enc[foot+40:], crc32.Checksum(flows, crcTable))
	le.PutUint32(enc[len(enc)-8:], crc32.Checksum(enc[foot:foot+footerSize], crcTable))
	s, err := Decode(enc)
	if err != nil {
		t.Fatalf("Decode: %v (the change should only show in the flows)", err)
	}
	if err := s.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v, want ErrCorrupt", err)
	}
}
