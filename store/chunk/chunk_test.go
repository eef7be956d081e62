package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var dec = NewDecoder()

// testPackets makes n packets whose bytes and times derive from their index.
func testPackets(rng *rand.Rand, n int) []Packet {
	out := make([]Packet, n)
	ts := int64(1_764_000_000_000_000_000)
	for i := range out {
		b := make([]byte, 14+rng.Intn(1500))
		rng.Read(b)
		copy(b, fmt.Sprintf("pkt%08d", i))
		ts += int64(rng.Intn(2_000_000)) - 200_000 // sometimes backwards
		out[i] = Packet{TS: ts, WireLen: uint32(len(b) + rng.Intn(2)), Data: b}
	}
	return out
}

// smallPackets are testPackets cut to at most 64 bytes: fuzz seeds of a few
// KiB with a dozen frames, not hundreds of KiB. The fuzzer minimizes every
// input that finds new coverage, and minimizing a whole large chunk took it
// a minute at a time, during which it fuzzed nothing.
func smallPackets(rng *rand.Rand, n int) []Packet {
	pkts := testPackets(rng, n)
	for i := range pkts {
		if len(pkts[i].Data) > 64 {
			pkts[i].Data = pkts[i].Data[:64]
		}
	}
	return pkts
}

// writeChunk stores pkts as a chunk of frames of about frameSize bytes and
// returns the open writer (not finalized) and the frames' packet counts.
func writeChunk(t testing.TB, dir string, pkts []Packet, frameSize int, zst bool, firstSeq uint64) *Writer {
	t.Helper()
	w, err := Create(dir, firstSeq, zst, 42)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	raw := PcapHeader()
	var f Frame
	seq := firstSeq
	nframes := 0
	flush := func() {
		if f.Count == 0 {
			return
		}
		f.DSize, f.Sum = uint32(len(raw)), Sum(raw)
		b := raw
		if zst && nframes%2 == 1 { // every other frame stored in raw blocks, as the writer stores random traffic
			b, _ = AppendStored(nil, raw)
		} else if zst {
			b = enc.EncodeAll(raw, nil)
		}
		nframes++
		if err := w.Append(b, f); err != nil {
			t.Fatal(err)
		}
		raw, f = nil, Frame{}
	}
	for _, p := range pkts {
		var ts int64
		raw, ts = AppendPacket(raw, p.TS, p.WireLen, p.Data)
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

func readAll(t testing.TB, dir string, in Info) ([]Packet, *Reader) {
	t.Helper()
	r, err := OpenReader(dir, in, dec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []Packet
	for i := range r.Table.Frames {
		b, err := r.ReadFrame(i, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := Packets(b, i == 0, func(p Packet) bool {
			p.Data = append([]byte(nil), p.Data...)
			out = append(out, p)
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out, r
}

func samePackets(t testing.TB, got, want []Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].TS != want[i].TS || got[i].WireLen != want[i].WireLen || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("packet %d differs: ts %d/%d len %d/%d", i, got[i].TS, want[i].TS, len(got[i].Data), len(want[i].Data))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, zst := range []bool{true, false} {
		t.Run(fmt.Sprint("zstd=", zst), func(t *testing.T) {
			dir := t.TempDir()
			pkts := testPackets(rand.New(rand.NewSource(1)), 3000)
			w := writeChunk(t, dir, pkts, 64<<10, zst, 100)
			// Readable while open ...
			list, _ := List(dir)
			if len(list) != 1 || !list[0].Open {
				t.Fatalf("list while open: %+v", list)
			}
			got, _ := readAll(t, dir, list[0])
			samePackets(t, got, pkts)
			// ... and once published.
			name, err := w.Finalize()
			if err != nil {
				t.Fatal(err)
			}
			list, _ = List(dir)
			if len(list) != 1 || list[0].Name != name || list[0].Open || list[0].FirstSeq != 100 || list[0].LastSeq != 3099 {
				t.Fatalf("list after finalize: %+v", list)
			}
			got, r := readAll(t, dir, list[0])
			samePackets(t, got, pkts)
			if r.Note != "" || len(r.Table.Frames) < 20 || r.Table.RingID != 42 {
				t.Fatalf("note %q, %d frames, ring id %d", r.Note, len(r.Table.Frames), r.Table.RingID)
			}
			var mn, mx int64 = pkts[0].TS, pkts[0].TS
			for _, p := range pkts {
				mn, mx = min(mn, p.TS), max(mx, p.TS)
			}
			if list[0].MinTS != mn || list[0].MaxTS != mx {
				t.Fatalf("name times %d..%d, want %d..%d", list[0].MinTS, list[0].MaxTS, mn, mx)
			}
			ents, _ := os.ReadDir(dir)
			wantFiles := 1
			if !zst {
				wantFiles = 3 // the frame table and the metadata sidecar
			}
			if len(ents) != wantFiles {
				t.Fatalf("%d files left in the store, want %d", len(ents), wantFiles)
			}
		})
	}
}

// TestRecover covers the states a kill -9 can leave an open chunk in.
func TestRecover(t *testing.T) {
	pkts := testPackets(rand.New(rand.NewSource(2)), 2000)
	tests := []struct {
		name    string
		zst     bool
		damage  func(t *testing.T, dir string, w *Writer)
		keep    int // frames kept, -1: all
		noChunk bool
	}{
		{"clean", true, func(*testing.T, string, *Writer) {}, -1, false},
		{"frame bytes without entry", true, func(t *testing.T, dir string, w *Writer) {
			w.data.Write(bytes.Repeat([]byte{0x28}, 5000))
		}, -1, false},
		{"half an entry", true, func(t *testing.T, dir string, w *Writer) {
			st, _ := w.ftab.Stat()
			w.ftab.Truncate(st.Size() - 30)
		}, 1, false},
		{"damaged frame", true, func(t *testing.T, dir string, w *Writer) {
			w.data.WriteAt([]byte{0xff, 0xff, 0xff}, int64(w.frames[3].Off+10))
		}, 3, false},
		{"cut frame", false, func(t *testing.T, dir string, w *Writer) {
			w.data.Truncate(int64(w.frames[5].Off + 7))
		}, 5, false},
		{"killed during finalize", true, func(t *testing.T, dir string, w *Writer) {
			tail := w.tables()
			w.data.Write(tail[:len(tail)/2])
		}, -1, false},
		{"empty", true, func(t *testing.T, dir string, w *Writer) {
			w.data.Truncate(0)
			w.ftab.Truncate(0)
		}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w := writeChunk(t, dir, pkts, 32<<10, tc.zst, 1)
			all := len(w.frames)
			tc.damage(t, dir, w)
			keep := tc.keep
			if keep < 0 {
				keep = all
			}
			if keep == 1 {
				keep = all - 1
			}
			wantPackets := 0
			for _, f := range w.frames[:keep] {
				wantPackets += int(f.Count)
			}
			w.data.Close()
			w.ftab.Close()
			res, err := Recover(dir, dec)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || res[0].Kept != keep {
				t.Fatalf("recover: %+v, want %d frames kept", res, keep)
			}
			list, _ := List(dir)
			if tc.noChunk {
				if len(list) != 0 {
					t.Fatalf("empty chunk published: %+v", list)
				}
				return
			}
			if len(list) != 1 || list[0].Open || list[0].LastSeq != uint64(wantPackets) {
				t.Fatalf("after recover: %+v, want one chunk ending at seq %d", list, wantPackets)
			}
			got, r := readAll(t, dir, list[0])
			if r.Note != "" {
				t.Fatalf("recovered chunk reads with a note: %s", r.Note)
			}
			samePackets(t, got, pkts[:wantPackets])
			for _, e := range mustReadDir(t, dir) {
				if strings.HasPrefix(e, ".") {
					t.Fatalf("temporary file left: %s", e)
				}
			}
		})
	}
}

func mustReadDir(t testing.TB, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestDamagedChunks: damage to a finished chunk is reported, and everything
// undamaged is still read.
func TestDamagedChunks(t *testing.T) {
	pkts := testPackets(rand.New(rand.NewSource(3)), 2000)
	dir := t.TempDir()
	w := writeChunk(t, dir, pkts, 32<<10, true, 1)
	frames := append([]Frame(nil), w.frames...)
	name, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(filepath.Join(dir, name))
	in, _ := ParseName(name)
	tests := []struct {
		name      string
		mutate    func(b []byte) []byte
		note      string // expected in Reader.Note
		badFrames []int
	}{
		{"frame bit flip", func(b []byte) []byte { b[frames[2].Off+40] ^= 0x10; return b }, "", []int{2}},
		{"frame table damaged", func(b []byte) []byte { b[len(b)-seekFooter-8-len(frames)*seekEntry-20] ^= 1; return b }, "seek table", nil},
		{"seek table cut", func(b []byte) []byte { return b[:len(b)-5] }, "scanning", nil},
		{"tables gone", func(b []byte) []byte { return b[:frames[len(frames)-1].Off+uint64(frames[len(frames)-1].CSize)] }, "scanning", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(append([]byte(nil), orig...))
			r, err := NewReader(in, bytes.NewReader(b), int64(len(b)), nil, dec)
			if err != nil {
				t.Fatal(err)
			}
			if tc.note != "" && !strings.Contains(r.Note, tc.note) || tc.note == "" && r.Note != "" {
				t.Fatalf("note %q, want %q", r.Note, tc.note)
			}
			var got []Packet
			var bad []int
			for i := range r.Table.Frames {
				fb, err := r.ReadFrame(i, nil)
				var fe *FrameError
				if errors.As(err, &fe) {
					bad = append(bad, i)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				Packets(fb, i == 0, func(p Packet) bool {
					p.Data = append([]byte(nil), p.Data...)
					got = append(got, p)
					return true
				})
			}
			if fmt.Sprint(bad) != fmt.Sprint(tc.badFrames) && !(len(bad) == 0 && tc.badFrames == nil) {
				t.Fatalf("bad frames %v, want %v", bad, tc.badFrames)
			}
			var want []Packet
			n := 0
			for i, f := range frames {
				if len(tc.badFrames) == 0 || i != tc.badFrames[0] {
					want = append(want, pkts[n:n+int(f.Count)]...)
				}
				n += int(f.Count)
			}
			samePackets(t, got, want)
		})
	}
}

func TestParseName(t *testing.T) {
	n := FinalName(1, 20, 5, 9, true)
	in, ok := ParseName(n)
	if !ok || in.FirstSeq != 1 || in.LastSeq != 20 || in.MinTS != 5 || in.MaxTS != 9 || !in.Zstd || in.Open {
		t.Fatalf("%s: %+v %v", n, in, ok)
	}
	for _, bad := range []string{"chunk-1-2-3.pcap.zst", "chunk-2-1-0-0.pcap", "chunk-1-2-9-3.pcap", "x-1-2-3-4.pcap", ".open-x.pcap", "chunk-00000000000000000001.ftab"} {
		if _, ok := ParseName(bad); ok {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

func TestAppendPacketZeroAlloc(t *testing.T) {
	buf := make([]byte, 0, 4096)
	data := make([]byte, 1500)
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendPacket(buf[:0], 1, 1500, data) }); n != 0 {
		t.Fatalf("AppendPacket allocates %v times", n)
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	buf := make([]byte, 0, 4096)
	data := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1516)
	for i := 0; i < b.N; i++ {
		buf, _ = AppendPacket(buf[:0], int64(i), 1500, data)
	}
}

// FuzzReader feeds arbitrary bytes to the chunk reader as a finished
// compressed chunk, an uncompressed chunk with a frame table and a
// metadata sidecar, and an open one: errors are fine, panics and endless
// loops are not.
func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	pkts := smallPackets(rand.New(rand.NewSource(4)), 120)
	w := writeChunk(f, dir, pkts, 1<<10, true, 1)
	name, _ := w.Finalize()
	good, _ := os.ReadFile(filepath.Join(dir, name))
	f.Add(good, []byte(nil), []byte(nil))
	f.Add(good[:len(good)/2], []byte(nil), []byte(nil))
	dir2 := f.TempDir()
	w = writeChunk(f, dir2, pkts, 1<<10, false, 1)
	w.Finalize()
	list, _ := List(dir2)
	raw, _ := os.ReadFile(filepath.Join(dir2, list[0].Name))
	side, _ := os.ReadFile(filepath.Join(dir2, ftabName(1, false)))
	f.Add(raw, side, []byte(nil))
	dir3 := f.TempDir() // with metadata frames
	w = writeChunkMeta(f, dir3, pkts, 1<<10, 1)
	name, _ = w.Finalize()
	withMeta, _ := os.ReadFile(filepath.Join(dir3, name))
	f.Add(withMeta, []byte(nil), []byte(nil))
	dir4 := f.TempDir() // uncompressed, with its metadata sidecar
	w = writeChunkMetaMode(f, dir4, pkts, 1<<10, 1, false)
	w.Finalize()
	list, _ = List(dir4)
	raw, _ = os.ReadFile(filepath.Join(dir4, list[0].Name))
	side, _ = os.ReadFile(filepath.Join(dir4, ftabName(1, false)))
	meta, _ := os.ReadFile(filepath.Join(dir4, metaName(1)))
	f.Add(raw, side, meta)
	f.Add(raw, side, meta[:len(meta)/2])
	f.Fuzz(func(t *testing.T, data, side, meta []byte) {
		for _, in := range []Info{{Name: "x", Zstd: true}, {Name: "y"}, {Name: "z", Zstd: true, Open: true}} {
			r, err := NewReader(in, bytes.NewReader(data), int64(len(data)), side, dec)
			if err != nil {
				continue
			}
			r.SetMeta(meta)
			var buf []byte
			var m Meta
			for i, fr := range r.Table.Frames {
				b, mb, _, err := r.AppendFrameMeta(i, fr, buf[:0], nil)
				if err != nil {
					continue
				}
				buf = b
				Packets(b, i == 0, func(Packet) bool { return true })
				if mb != nil && m.Parse(mb) == nil {
					it := m.Iter()
					var pm PacketMeta
					for it.Next(&pm) {
					}
				}
			}
		}
	})
}

func FuzzParseTable(f *testing.F) {
	b := appendFtabHeader(nil, true, 7)
	b = appendEntry(b, &Frame{CSize: 10, DSize: 20, FirstSeq: 1, LastSeq: 3, Count: 3, MinTS: 1, MaxTS: 2})
	f.Add(b)
	f.Add(b[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ParseTable(b)
		if err != nil {
			return
		}
		var next uint64
		for i, fr := range tab.Frames {
			if fr.Off != next || fr.LastSeq < fr.FirstSeq || fr.MinTS > fr.MaxTS {
				t.Fatalf("entry %d accepted though inconsistent: %+v", i, fr)
			}
			next = fr.Off + uint64(fr.CSize)
		}
	})
}

func FuzzPackets(f *testing.F) {
	b := PcapHeader()
	b, _ = AppendPacket(b, 5, 60, make([]byte, 60))
	f.Add(b, true)
	f.Add(b[24:], false)
	f.Fuzz(func(t *testing.T, b []byte, first bool) {
		Packets(b, first, func(p Packet) bool {
			if p.WireLen < uint32(len(p.Data)) {
				t.Fatal("wire length below captured length accepted")
			}
			return true
		})
	})
}

// BenchmarkPackets walks a 32 KiB frame of small packets (the per-packet
// step of every query), and checks it whole with Records (a time slice's).
func BenchmarkPackets(b *testing.B) {
	frame := PcapHeader()
	for len(frame) < 32<<10 {
		frame, _ = AppendPacket(frame, int64(len(frame))*1000, 64, make([]byte, 64))
	}
	b.Run("Packets", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			n := 0
			if err := Packets(frame, true, func(Packet) bool { n++; return true }); err != nil || n == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("Records", func(b *testing.B) {
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			if n, _, err := Records(frame, true); err != nil || n == 0 {
				b.Fatal(err)
			}
		}
	})
}

// FuzzRecords: Records agrees with Packets on every input: the same
// count of whole records before any damage, the same error, and the first
// record where Packets finds it (fmslice writes a frame as its stored bytes
// on Records' word, and walks it with Packets when Records refuses it).
func FuzzRecords(f *testing.F) {
	b := PcapHeader()
	b, _ = AppendPacket(b, 5, 60, make([]byte, 60))
	b, _ = AppendPacket(b, 7, 1500, make([]byte, 100))
	f.Add(b, true)
	f.Add(b[24:], false)
	f.Add(b[:len(b)-1], true)
	f.Add(b[24:40], false)
	f.Fuzz(func(t *testing.T, b []byte, first bool) {
		n, start, err := Records(b, first)
		var walked int
		var firstOff = -1
		perr := Packets(b, first, func(p Packet) bool {
			if walked == 0 {
				firstOff = p.Off
			}
			walked++
			return true
		})
		if (err == nil) != (perr == nil) || err != nil && err.Error() != perr.Error() {
			t.Fatalf("Records: %v; Packets: %v", err, perr)
		}
		if n != walked {
			t.Fatalf("Records counts %d records, Packets walks %d", n, walked)
		}
		if walked > 0 && start+pcapRecSize != firstOff {
			t.Fatalf("Records: first record at %d, Packets: its data at %d", start, firstOff)
		}
	})
}

func TestClampTS(t *testing.T) {
	for _, c := range []struct{ in, want int64 }{
		{-1, 0}, {math.MinInt64, 0}, {0, 0}, {1, 1}, {MaxTS, MaxTS}, {MaxTS + 1, MaxTS}, {math.MaxInt64, MaxTS},
		{int64(1<<32) * 1e9, MaxTS}, {int64(1<<32-1) * 1e9, int64(1<<32-1) * 1e9},
	} {
		if got := ClampTS(c.in); got != c.want {
			t.Errorf("ClampTS(%d) = %d, want %d", c.in, got, c.want)
		}
		b, ts := AppendPacket(nil, c.in, 60, make([]byte, 60))
		var back int64
		Packets(append(PcapHeader(), b...), true, func(p Packet) bool { back = p.TS; return true })
		if ts != c.want || back != c.want {
			t.Errorf("AppendPacket(%d): returned %d, stored %d, want %d", c.in, ts, back, c.want)
		}
	}
}
