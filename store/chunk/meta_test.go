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
	return writeChunkMetaMode(t, dir, pkts, frameSize, firstSeq, true)
}

// writeChunkMetaMode is writeChunkMeta compressed or not (zst): an
// uncompressed chunk's metadata frames go to its sidecar.
func writeChunkMetaMode(t testing.TB, dir string, pkts []Packet, frameSize int, firstSeq uint64, zst bool) *Writer {
	t.Helper()
	w, err := Create(dir, firstSeq, zst, 42)
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
		f.DSize, f.Sum = uint32(len(raw)), Sum(raw)
		var err error
		if zst {
			f.Meta = uint32(len(b))
			err = w.Append(enc.EncodeAll(raw, b), f)
		} else {
			err = w.AppendBatchMeta([][]byte{raw}, [][]byte{b}, []Frame{f})
		}
		if err != nil {
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

// openReadMeta is readMeta of chunk in of dir, opened and closed again
// (r for its table and Note).
func openReadMeta(t *testing.T, dir string, in Info) (got []Packet, n int, r *Reader) {
	t.Helper()
	r, err := OpenReader(dir, in, dec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, n = readMeta(t, r)
	return got, n, r
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
	got, n, r := openReadMeta(t, dir, list[0])
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
		recoveredAllBut(t, dir, pkts, last, kept)
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

// recoveredAllBut recovers the open chunk of dir, whose last frame (of
// pkts, from seq 1) a crash cut, and checks that the kept frames, all but
// that one, read back with their metadata.
func recoveredAllBut(t *testing.T, dir string, pkts []Packet, last Frame, kept int) {
	t.Helper()
	res, err := Recover(dir, dec)
	if err != nil || len(res) != 1 || res[0].Kept != kept || res[0].Dropped != 1 || res[0].LastSeq != last.FirstSeq-1 {
		t.Fatalf("%+v %v, want %d kept", res, err, kept)
	}
	list, _ := List(dir)
	got, n, r := openReadMeta(t, dir, list[0])
	samePackets(t, got, pkts[:last.FirstSeq-1])
	if n != kept || r.Note != "" {
		t.Fatalf("%d frames with metadata of %d, note %q", n, kept, r.Note)
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

// TestPlainMetaRoundTrip: an uncompressed chunk keeps every packet's
// metadata in its sidecar, open and published; the pcap file itself is
// untouched (tcpdump reads it), and the sidecar is the metadata frames a
// compressed chunk of the same packets has, byte for byte, in frame order.
func TestPlainMetaRoundTrip(t *testing.T) {
	dir, zdir := t.TempDir(), t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(11)), 3000)
	w := writeChunkMetaMode(t, dir, pkts, 32<<10, 1000, false)
	zw := writeChunkMetaMode(t, zdir, pkts, 32<<10, 1000, true)
	list, _ := List(dir)
	got, n, r := openReadMeta(t, dir, list[0])
	samePackets(t, got, pkts)
	if n != r.NumFrames() || n < 20 {
		t.Fatalf("open: %d of %d frames with metadata", n, r.NumFrames())
	}
	name, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	zname, err := zw.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	list, _ = List(dir)
	if files := list[0].Files(); len(files) != 3 || files[2] != "chunk-00000000000000001000.fmpm" || list[0].MetaFile() != files[2] {
		t.Fatalf("files %q, sidecar %q", files, list[0].MetaFile())
	}
	got, n, r = openReadMeta(t, dir, list[0])
	samePackets(t, got, pkts)
	if n != r.NumFrames() || r.Note != "" {
		t.Fatalf("published: %d of %d frames with metadata, note %q", n, r.NumFrames(), r.Note)
	}
	frames := r.Table.Frames

	side, _ := os.ReadFile(filepath.Join(dir, list[0].MetaFile()))
	zraw, _ := os.ReadFile(filepath.Join(zdir, zname))
	var want []byte
	for _, f := range zw.frames {
		want = append(want, zraw[f.Off:f.Off+uint64(f.Meta)]...)
	}
	if !bytes.Equal(side, want) {
		t.Fatalf("sidecar of %d bytes is not the compressed chunk's %d bytes of metadata frames", len(side), len(want))
	}
	for i := range frames {
		if frames[i].Meta != zw.frames[i].Meta {
			t.Fatalf("frame %d: metadata size %d, compressed %d", i, frames[i].Meta, zw.frames[i].Meta)
		}
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("tcpdump is a test dependency: %v", err)
	}
	out, err := exec.Command("tcpdump", "--count", "-r", filepath.Join(dir, name)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3000 packets") {
		t.Fatalf("tcpdump --count -r: %q (%v), want 3000 packets", out, err)
	}
}

// TestPlainMetaSidecarCut: a published uncompressed chunk whose sidecar
// was cut short (or is gone: a chunk from before sidecars) reads every
// packet, those of frames whose metadata is not all there with their
// origin unknown.
func TestPlainMetaSidecarCut(t *testing.T) {
	dir := t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(12)), 1000)
	w := writeChunkMetaMode(t, dir, pkts, 16<<10, 1, false)
	if _, err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	list, _ := List(dir)
	sp := filepath.Join(dir, list[0].MetaFile())
	side, _ := os.ReadFile(sp)
	nf := len(w.frames)
	keep := nf / 2 // frames whose metadata stays whole
	var at uint64
	for _, f := range w.frames[:keep] {
		at += uint64(f.Meta)
	}
	for _, cut := range []int64{int64(at) + 5, int64(at), 0, -1} {
		if cut < 0 {
			os.Remove(sp)
		} else if err := os.WriteFile(sp, side[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		got, n, _ := openReadMeta(t, dir, list[0])
		samePackets(t, got, pkts)
		want := 0
		if cut >= int64(at) {
			want = keep
		}
		if n != want {
			t.Fatalf("sidecar cut at %d: %d frames with metadata, want %d", cut, n, want)
		}
	}
}

// TestRecoverPlainMeta: a crash that left an open uncompressed chunk's
// sidecar short of its last entries cuts the chunk, its table and its
// sidecar back at the first frame whose metadata is not whole, as a cut
// metadata frame does in a compressed chunk; an open chunk from before
// sidecars (entries without metadata) keeps every frame.
func TestRecoverPlainMeta(t *testing.T) {
	dir := t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(13)), 1000)
	w := writeChunkMetaMode(t, dir, pkts, 16<<10, 1, false)
	last := w.frames[len(w.frames)-1]
	kept := len(w.frames) - 1
	w.data.Close()
	w.ftab.Close()
	w.meta.Close()
	if err := os.Truncate(w.meta.Name(), int64(w.metaSize)-3); err != nil {
		t.Fatal(err)
	}
	recoveredAllBut(t, dir, pkts, last, kept)
	if st, _ := os.Stat(w.meta.Name()); st.Size() != int64(w.metaSize)-int64(last.Meta) {
		t.Fatalf("sidecar of %d bytes, want %d", st.Size(), int64(w.metaSize)-int64(last.Meta))
	}

	// Before sidecars: no metadata, no sidecar; every frame kept.
	dir = t.TempDir()
	w = writeChunk(t, dir, pkts, 16<<10, false, 1)
	nf := len(w.frames)
	w.data.Close()
	w.ftab.Close()
	w.meta.Close()
	os.Remove(w.meta.Name())
	res, err := Recover(dir, dec)
	if err != nil || len(res) != 1 || res[0].Kept != nf || res[0].Dropped != 0 {
		t.Fatalf("before sidecars: %+v %v, want %d kept", res, err, nf)
	}
	list, _ := List(dir)
	got, _ := readAll(t, dir, list[0])
	samePackets(t, got, pkts)
}
