package segment

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"

	"github.com/fmcap/fmcap/internal/testpkt"
)

// flowAt is a flow at one origin, as the tests count it packet by packet.
type flowAt struct {
	k FlowKey
	o Origin // the zero value: not known
}

type flowAtFigures struct {
	flags       uint8
	pkts, bytes uint64
	first, last int64
}

// buildFlowOrigins is a segment of corpus packets from the test origins
// (in runs, as ports and tunnels come; a tenth unknown, timestamps out of
// order now and then), and each flow's figures at each origin as a scan
// of the packets counts them.
func buildFlowOrigins(t testing.TB) (enc []byte, want map[flowAt]flowAtFigures) {
	frames := testpkt.Corpus(t)
	orig := testOrigins()
	rng := rand.New(rand.NewSource(15))
	const first, n, G = 7, 6000, 16
	b := NewBuilder(first, G)
	want = map[flowAt]flowAtFigures{}
	for i := 0; i < n; i++ {
		var p Packet
		DecodePacket(frames[rng.Intn(len(frames))], &p)
		p.Wire = uint32(60 + rng.Intn(1400))
		if rng.Intn(10) > 0 {
			p.Origin = orig[(i/40+rng.Intn(2))%len(orig)]
		}
		ts := int64(1000*i) - int64(rng.Intn(3000))
		b.Add(uint64(first+i), ts, &p)
		k, flags, ok := KeyOf(&p)
		if !ok {
			continue
		}
		fa := flowAt{k, p.Origin}
		w, seen := want[fa]
		if !seen {
			w.first, w.last = ts, ts
		}
		w.flags |= flags
		w.pkts++
		w.bytes += uint64(p.Wire)
		w.first, w.last = min(w.first, ts), max(w.last, ts)
		want[fa] = w
	}
	return b.Encode(), want
}

// The flow origins hold, for every flow, exactly its figures at each
// origin a scan of the packets finds.
func TestFlowOrigins(t *testing.T) {
	enc, want := buildFlowOrigins(t)
	s, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasFlowOrigins() {
		t.Fatal("a version 8 segment says it has no flow origins")
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	origins, per, err := s.FlowOrigins(table)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	multi := 0
	for i, f := range table {
		if len(per[i]) > 1 {
			multi++
		}
		for _, e := range per[i] {
			var o Origin
			if e.Origin >= 0 {
				o = origins[e.Origin]
			}
			w, ok := want[flowAt{f.FlowKey, o}]
			g := flowAtFigures{e.Flags, e.Packets, e.Bytes, e.First, e.Last}
			if !ok || g != w {
				t.Fatalf("flow %d at origin %+v: got %+v want %+v (known %v)", i, o, g, w, ok)
			}
			got++
		}
	}
	if got != len(want) || multi == 0 {
		t.Fatalf("%d (flow, origin) entries, want %d; %d flows with several origins", got, len(want), multi)
	}
}

// Version 7 segments (no flow origins) stay readable: everything else as
// before, and FlowOrigins says they have none.
func TestFlowOriginsVersion7(t *testing.T) {
	enc, _ := buildFlowOrigins(t)
	s8, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Decode(toV7(enc))
	if err != nil {
		t.Fatal(err)
	}
	if s.HasFlowOrigins() || !s.HasOrigins() || !s.HasCounts() {
		t.Fatalf("version 7: flow origins %v, origin terms %v, counts %v; want false, true, true", s.HasFlowOrigins(), s.HasOrigins(), s.HasCounts())
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	t7, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	t8, _ := s8.FlowTable()
	if len(t7) != len(t8) {
		t.Fatalf("version 7: %d flows, version 8: %d", len(t7), len(t8))
	}
	if _, _, err := s.FlowOrigins(t7); err == nil {
		t.Fatal("FlowOrigins of a version 7 segment: no error")
	}
	if s.Err() != nil {
		t.Fatalf("asking a version 7 segment for flow origins marked it damaged: %v", s.Err())
	}
}

// A flow origins section that does not match its CRC marks the segment
// corrupt.
func TestFlowOriginsDamaged(t *testing.T) {
	enc, _ := buildFlowOrigins(t)
	foot := len(enc) - 8 - footerSize
	at := int(binary.LittleEndian.Uint64(enc[foot+48:])) + 1
	enc[at] ^= 0x40
	s, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	table, err := s.FlowTable()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.FlowOrigins(table); !errors.Is(err, ErrCorrupt) || !errors.Is(s.Err(), ErrCorrupt) {
		t.Fatalf("FlowOrigins: %v (Err %v), want ErrCorrupt", err, s.Err())
	}
}

// FuzzFlowOrigins: a flow origins section holding anything never panics
// its decoder; it decodes, entries within their flows and adding up to
// them, or fails.
func FuzzFlowOrigins(f *testing.F) {
	enc, _ := buildFlowOrigins(f)
	s, err := Decode(enc)
	if err != nil {
		f.Fatal(err)
	}
	table, err := s.FlowTable()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.forig)
	f.Add([]byte{1, 0, 0, 1, 0, 0, 0, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 1, 1, 0, 1, 60, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		origins, per, err := decodeFlowOrigins(p, table)
		if err != nil {
			return
		}
		for i, es := range per {
			var pkts uint64
			for _, e := range es {
				if e.Origin >= len(origins) || e.First < table[i].First || e.Last > table[i].Last {
					t.Fatalf("flow %d: entry %+v outside its flow %+v (%d origins)", i, e, table[i], len(origins))
				}
				pkts += e.Packets
			}
			if pkts != table[i].Packets {
				t.Fatalf("flow %d: entries add up to %d packets, the flow has %d", i, pkts, table[i].Packets)
			}
		}
	})
}

// Counting a packet of a known flow at a known origin allocates nothing:
// the indexer's per-packet path, a flow at several origins included.
func TestFlowOriginsNoAlloc(t *testing.T) {
	frames := testpkt.Corpus(t)[:32]
	orig := testOrigins()
	ps := make([]Packet, 64)
	for i := range ps {
		DecodePacket(frames[i%len(frames)], &ps[i])
		ps[i].Wire = 100
		ps[i].Origin = orig[i%3] // three origins a flow
	}
	b := NewBuilder(1, 1<<20) // one group: no group is new
	seq := uint64(1)
	add := func() {
		b.Add(seq, int64(seq), &ps[seq%uint64(len(ps))])
		seq++
	}
	for range 10 * len(ps) {
		add()
	}
	if n := testing.AllocsPerRun(1000, add); n != 0 {
		t.Fatalf("%v allocations a packet", n)
	}
}
