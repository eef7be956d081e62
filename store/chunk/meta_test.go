package chunk

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/fmcap/fmcap/internal/origin"
)

// metaFor is the metadata the tests give seq: runs of equal values
// (packets of one flow), alternating directions (a both-mode rule) and the
// three kinds of origin.
func metaFor(seq uint64) PacketMeta {
	m := PacketMeta{Port: uint16(seq / 50 % 3), Dir: uint8(1 + seq/7%2), Rule: uint32(seq / 100)}
	switch seq / 30 % 4 {
	case 1:
		m.Origin = origin.FromGWLB(0xabc0+seq/120, 7, uint32(seq/30))
	case 2:
		m.Origin = origin.FromMirror(uint32(seq/120), []byte{198, 18, 0, 9})
	case 3:
		a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
		m.Origin = origin.FromMirror(uint32(seq/120)+1, a[:])
	}
	return m
}

// writeChunkMeta is writeChunk with metadata frames, as the writer makes
// them (writer/compress.go).
func writeChunkMeta(t testing.TB, dir string, pkts []Packet, frameSize int, firstSeq uint64) *Writer {
	t.Helper()
	w, err := Create(dir, firstSeq, true, 42)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
	raw := PcapHeader()
	var f Frame
	var mb MetaBuilder
	seq := firstSeq
	flush := func() {
		if f.Count == 0 {
			return
		}
		b := mb.AppendFrame(nil)
		f.Meta = uint32(len(b))
		b = enc.EncodeAll(raw, b)
		f.DSize, f.Sum = uint32(len(raw)), Sum(raw)
		if err := w.Append(b, f); err != nil {
			t.Fatal(err)
		}
		raw, f = nil, Frame{}
		mb.Reset()
	}
	for _, p := range pkts {
		var ts int64
		raw, ts = AppendPacket(raw, p.TS, p.WireLen, p.Data)
		m := metaFor(seq)
		mb.Add(m.Port, m.Dir, m.Rule, m.Origin.Kind, m.Origin.Bytes())
		if f.Count == 0 {
			f.FirstSeq, f.MinTS, f.MaxTS = seq, ts, ts
		}
		f.LastSeq, f.Count = seq, f.Count+1
		f.MinTS, f.MaxTS = min(f.MinTS, ts), max(f.MaxTS, ts)
		seq++
		if len(raw) >= frameSize {
			flush()
		}
	}
	flush()
	return w
}

// readMeta reads every frame of r with its metadata and checks each
// packet's against metaFor; it returns the packets and how many frames had
// metadata.
func readMeta(t *testing.T, r *Reader) ([]Packet, int) {
	t.Helper()
	var out []Packet
	var m Meta
	withMeta := 0
	for i := 0; i < r.NumFrames(); i++ {
		f, err := r.Frame(i)
		if err != nil {
			t.Fatal(err)
		}
		b, mb, _, err := r.AppendFrameMeta(i, f, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var it MetaIter
		if mb != nil {
			withMeta++
			if err := m.Parse(mb); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			if f.Count != 0 && m.Count() != f.Count {
				t.Fatalf("frame %d: metadata for %d packets, frame has %d", i, m.Count(), f.Count)
			}
			it = m.Iter()
		}
		seq := f.FirstSeq
		if err := Packets(b, i == 0, func(p Packet) bool {
			if mb != nil {
				var pm PacketMeta
				if !it.Next(&pm) {
					t.Fatalf("frame %d: metadata ends before packet seq %d", i, seq)
				}
				if want := metaFor(seq); pm != want {
					t.Fatalf("seq %d: metadata %+v, want %+v", seq, pm, want)
				}
			}
			seq++
			p.Data = append([]byte(nil), p.Data...)
			out = append(out, p)
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out, withMeta
}

// TestMetaRoundTrip: every packet's port, direction, rule and origin come
// back from an open chunk, a published one, its lazy reader, and one whose
// tables are damaged (frames found by scanning); the stock tools still read
// it as pcap.
func TestMetaRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(7)), 3000)
	w := writeChunkMeta(t, dir, pkts, 32<<10, 1000)
	list, _ := List(dir)
	r, err := OpenReader(dir, list[0], dec)
	if err != nil {
		t.Fatal(err)
	}
	got, n := readMeta(t, r)
	r.Close()
	samePackets(t, got, pkts)
	if n != len(r.Table.Frames) || n < 20 {
		t.Fatalf("%d of %d frames with metadata", n, len(r.Table.Frames))
	}
	name, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	list, _ = List(dir)
	for _, open := range []func() (*Reader, error){
		func() (*Reader, error) { return OpenReader(dir, list[0], dec) },
		func() (*Reader, error) { return OpenLazy(dir, list[0], dec) },
	} {
		r, err := open()
		if err != nil {
			t.Fatal(err)
		}
		got, n := readMeta(t, r)
		samePackets(t, got, pkts)
		if n != r.NumFrames() || r.Note != "" {
			t.Fatalf("%d of %d frames with metadata, note %q", n, r.NumFrames(), r.Note)
		}
		r.Close()
	}

	// zstd -dc CHUNK | tcpdump -r -: the pcap bytes exactly, every packet.
	path := filepath.Join(dir, name)
	var want []byte
	rd, _ := OpenReader(dir, list[0], dec)
	for i := range rd.Table.Frames {
		b, err := rd.ReadFrame(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	rd.Close()
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Fatalf("zstd is a test dependency (apt-get install zstd): %v", err)
	}
	plain, err := exec.Command("zstd", "-dc", path).Output()
	if err != nil {
		t.Fatalf("zstd -dc: %v", err)
	}
	if !bytes.Equal(plain, want) {
		t.Fatalf("zstd -dc gives %d bytes, the frames hold %d", len(plain), len(want))
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("tcpdump is a test dependency: %v", err)
	}
	sh := exec.Command("sh", "-c", `zstd -dc "$1" | tcpdump --count -r - 2>&1`, "sh", path)
	out, err := sh.Output()
	if err != nil || !strings.Contains(string(out), "3000 packets") {
		t.Fatalf("zstd -dc | tcpdump --count -r -: %q (%v), want 3000 packets", out, err)
	}

	// Both tables damaged: the scan finds every frame, metadata included.
	raw, _ := os.ReadFile(path)
	binary.LittleEndian.PutUint32(raw[len(raw)-4:], 0) // the seek table's footer magic
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = OpenReader(dir, list[0], dec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Note == "" || r.NumFrames() != n {
		t.Fatalf("damaged tables: note %q, %d frames, want %d", r.Note, r.NumFrames(), n)
	}
	for i, f := range r.Table.Frames {
		if f.Meta == 0 {
			t.Fatalf("scanned frame %d: no metadata", i)
		}
		b, mb, _, err := r.AppendFrameMeta(i, f, nil, nil)
		var m Meta
		if err != nil || m.Parse(mb) != nil || len(b) == 0 {
			t.Fatalf("scanned frame %d: %v", i, err)
		}
	}
}

// TestOldChunkNoMeta: a chunk without metadata frames (written before
// them) reads as before, its metadata nil: origin unknown.
func TestOldChunkNoMeta(t *testing.T) {
	dir := t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(8)), 500)
	w := writeChunk(t, dir, pkts, 16<<10, true, 1)
	if _, err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	list, _ := List(dir)
	r, err := OpenReader(dir, list[0], dec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, n := readMeta(t, r)
	samePackets(t, got, pkts)
	if n != 0 {
		t.Fatalf("%d frames of an old chunk with metadata", n)
	}
}

// TestRecoverCutInMeta: a crash that cut the open chunk inside the last
// frame's metadata frame loses that frame only; the chunk published keeps
// every whole frame with its metadata.
func TestRecoverCutInMeta(t *testing.T) {
	for _, cut := range []int{3, 8, 20} { // in the skippable header, its magic, its runs
		dir := t.TempDir()
		pkts := testPackets(rand.New(rand.NewSource(9)), 1000)
		w := writeChunkMeta(t, dir, pkts, 16<<10, 1)
		last := w.frames[len(w.frames)-1]
		kept := len(w.frames) - 1
		w.data.Close()
		w.ftab.Close()
		if err := os.Truncate(w.data.Name(), int64(last.Off)+int64(cut)); err != nil {
			t.Fatal(err)
		}
		res, err := Recover(dir, dec)
		if err != nil || len(res) != 1 || res[0].Kept != kept || res[0].Dropped != 1 || res[0].LastSeq != last.FirstSeq-1 {
			t.Fatalf("cut %d: %+v %v, want %d kept", cut, res, err, kept)
		}
		list, _ := List(dir)
		r, err := OpenReader(dir, list[0], dec)
		if err != nil {
			t.Fatal(err)
		}
		got, n := readMeta(t, r)
		r.Close()
		samePackets(t, got, pkts[:last.FirstSeq-1])
		if n != kept || r.Note != "" {
			t.Fatalf("cut %d: %d frames with metadata of %d, note %q", cut, n, kept, r.Note)
		}
	}
	// Metadata whose packet count is not the frame's is not kept either.
	dir := t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(10)), 300)
	w := writeChunkMeta(t, dir, pkts, 16<<10, 1)
	last := w.frames[len(w.frames)-1]
	w.data.Close()
	w.ftab.Close()
	raw, _ := os.ReadFile(w.data.Name())
	raw[last.Off+8+16] ^= 1 // a byte of the first origin or run: the CRC no longer holds
	os.WriteFile(w.data.Name(), raw, 0o600)
	res, err := Recover(dir, dec)
	if err != nil || len(res) != 1 || res[0].Kept != len(w.frames)-1 {
		t.Fatalf("damaged metadata: %+v %v", res, err)
	}
}

// FuzzMeta: any bytes parse to a consistent Meta (its runs give exactly
// Count packets, each origin valid) or to ErrCorrupt; never a panic.
func FuzzMeta(f *testing.F) {
	var mb MetaBuilder
	for s := uint64(0); s < 400; s++ {
		m := metaFor(s)
		mb.Add(m.Port, m.Dir, m.Rule, m.Origin.Kind, m.Origin.Bytes())
	}
	b := mb.AppendFrame(nil)
	f.Add(b[8:])
	mb.Reset()
	mb.Add(1, 1, 1, 0, nil)
	f.Add(mb.AppendFrame(nil)[8:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Meta
		if err := m.Parse(b); err != nil {
			if !strings.Contains(err.Error(), ErrCorrupt.Error()) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		it := m.Iter()
		var p PacketMeta
		n := uint32(0)
		for it.Next(&p) {
			if _, err := origin.Parse(p.Origin.Kind, p.Origin.Bytes()); err != nil {
				t.Fatalf("packet %d: origin %v", n, err)
			}
			n++
		}
		if n != m.Count() {
			t.Fatalf("iterated %d packets, Count %d", n, m.Count())
		}
	})
}

// TestMetaBuilderNoAlloc: adding packets seen before costs no allocation
// (the writer's consume stage runs it per packet).
func TestMetaBuilderNoAlloc(t *testing.T) {
	var mb MetaBuilder
	g := origin.FromGWLB(1, 2, 3)
	mb.Add(0, 1, 5, g.Kind, g.Bytes())
	mb.Add(0, 2, 5, g.Kind, g.Bytes())
	mb.Reset()
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		if i%64 == 0 {
			mb.Reset()
		}
		mb.Add(0, uint8(1+i%2), 5, g.Kind, g.Bytes())
		i++
	})
	if n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
}

// BenchmarkMetaFrame is the writer's metadata cost per packet: Add for
// each packet of a 32 KiB frame of 700-byte packets (bench/gen's mean) and
// the frame's AppendFrame, against BenchmarkAppendPacket's copy of the
// packet: "run" is one rule's ingress copies (one run a frame), "both" a
// both-mode rule's alternating directions with a GWLB origin (a run per
// packet, the worst case).
func BenchmarkMetaFrame(b *testing.B) {
	for _, c := range []struct {
		name string
		alt  int
		o    origin.Origin
	}{{"run", 0, origin.Origin{}}, {"both", 1, origin.FromGWLB(1, 2, 3)}} {
		b.Run(c.name, func(b *testing.B) {
			var mb MetaBuilder
			out := make([]byte, 0, 4096)
			const perFrame = 32 << 10 / 716
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if i%perFrame == 0 {
					out = mb.AppendFrame(out[:0])
					mb.Reset()
				}
				mb.Add(0, uint8(1+i%2*c.alt), 7, c.o.Kind, c.o.Bytes())
			}
		})
	}
}
