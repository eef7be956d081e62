package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OpenLazy gives the same frames and bytes as OpenReader; a damaged entry
// is an error for that entry only (the caller falls back to OpenReader);
// chunks it cannot read that way say ErrNotLazy.
func TestLazyReader(t *testing.T) {
	dir := t.TempDir()
	pkts := testPackets(rand.New(rand.NewSource(9)), 2000)
	w := writeChunk(t, dir, pkts, 8<<10, true, 100)
	name, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	list, _ := List(dir)
	in := list[0]
	eager, err := OpenReader(dir, in, dec)
	if err != nil {
		t.Fatal(err)
	}
	defer eager.Close()
	lazy, err := OpenLazy(dir, in, dec)
	if err != nil {
		t.Fatal(err)
	}
	if lazy.NumFrames() != len(eager.Table.Frames) || lazy.NumFrames() < 10 {
		t.Fatalf("%d frames lazily, %d eagerly", lazy.NumFrames(), len(eager.Table.Frames))
	}
	for i, want := range eager.Table.Frames {
		got, err := lazy.Frame(i)
		if err != nil || got != want {
			t.Fatalf("frame %d: %+v %v, want %+v", i, got, err, want)
		}
		a, err1 := eager.ReadFrame(i, nil)
		b, _, err2 := lazy.ReadFrameInto(i, nil, nil)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("frame %d bytes differ (%v, %v)", i, err1, err2)
		}
		for _, seq := range []uint64{want.FirstSeq, want.LastSeq} {
			if j, err := lazy.SearchSeq(seq); err != nil || j != i {
				t.Fatalf("SearchSeq(%d) = %d, %v; want %d", seq, j, err, i)
			}
		}
	}
	if j, _ := lazy.SearchSeq(1 << 40); j != lazy.NumFrames() {
		t.Fatalf("SearchSeq past the end = %d", j)
	}
	lazy.Close()

	// One entry damaged: that entry fails, reading its frame fails, others
	// are fine.
	p := filepath.Join(dir, name)
	b, _ := os.ReadFile(p)
	k := 3
	at := len(b) - (len(eager.Table.Frames)*seekEntry + seekFooter + 8) - 8 - (ftabHdrSize + len(eager.Table.Frames)*EntrySize) + 8 + ftabHdrSize + k*EntrySize + 20
	b[at] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	lazy, err = OpenLazy(dir, in, dec)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	if _, err := lazy.Frame(k); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged entry %d: %v", k, err)
	}
	if _, _, err := lazy.ReadFrameInto(k, nil, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("frame of a damaged entry read: %v", err)
	}
	if _, err := lazy.Frame(k + 1); err != nil {
		t.Fatalf("entry %d: %v", k+1, err)
	}
	// Open and uncompressed chunks are not lazy; neither is a chunk whose
	// seek table footer is damaged.
	for _, c := range []Info{{Name: in.Name, Zstd: true, Open: true}, {Name: in.Name}} {
		if _, err := OpenLazy(dir, c, dec); !errors.Is(err, ErrNotLazy) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	if _, err := OpenLazy(dir, in, dec); !errors.Is(err, ErrNotLazy) {
		t.Fatalf("damaged footer: %v", err)
	}
}

// FuzzLazy: whatever bytes a chunk holds, finding its tables and reading
// entries and searching by seq never panic; an entry that is returned
// without error passes its checks.
func FuzzLazy(f *testing.F) {
	dir := f.TempDir()
	w := writeChunk(f, dir, smallPackets(rand.New(rand.NewSource(5)), 120), 1<<10, true, 1)
	name, _ := w.Finalize()
	good, _ := os.ReadFile(filepath.Join(dir, name))
	f.Add(good)
	f.Add(good[len(good)/2:])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < seekFooter+8+ftabHdrSize+8 {
			return
		}
		tab, err := findTables(data)
		if err != nil {
			return
		}
		r := &Reader{Info: Info{Name: "x", Zstd: true}, lazy: tab, size: int64(len(data))}
		for i := 0; i < r.NumFrames(); i++ {
			if fr, err := r.Frame(i); err == nil && (fr.LastSeq < fr.FirstSeq || fr.Off+uint64(fr.CSize) > tab.framesEnd) {
				t.Fatalf("entry %d accepted with %+v", i, fr)
			}
		}
		r.SearchSeq(0)
		r.SearchSeq(1 << 62)
	})
}

// A seek table (no CRC) that claims a huge frame makes reading that frame an
// error, not an allocation of what it claims.
func TestHugeFrameRefused(t *testing.T) {
	dir := t.TempDir()
	w := writeChunk(t, dir, testPackets(rand.New(rand.NewSource(6)), 200), 8<<10, true, 1)
	name, err := w.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, name))
	n := int(binary.LittleEndian.Uint32(b[len(b)-seekFooter:]))
	seek := len(b) - seekFooter - n*seekEntry
	ft := seek - 8 - (ftabHdrSize + n*EntrySize)
	b[ft+ftabHdrSize+60] ^= 1                        // frame table entry 0's CRC: the seek table is used
	binary.LittleEndian.PutUint32(b[seek+4:], 1<<29) // entry 0's decompressed size
	r, err := NewReader(Info{Name: name, Zstd: true}, bytes.NewReader(b), int64(len(b)), nil, dec)
	if err != nil || r.Note == "" {
		t.Fatalf("reader: %v, note %q", err, r.Note)
	}
	if _, err := r.ReadFrame(0, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "larger than any") {
		t.Fatalf("huge frame: %v", err)
	}
	if _, err := r.ReadFrame(1, nil); err != nil {
		t.Fatalf("frame 1: %v", err)
	}
}

// SearchSeq interpolates on seqs: frames holding very different numbers of
// packets (tiny packets, then large ones) must still give the exact frame
// for every seq, as a linear scan does.
func TestSearchSeqUnevenFrames(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(3))
	pkts := testPackets(rng, 3000)
	for i := range pkts {
		n := 60
		if i > 2600 {
			n = 1500
		}
		pkts[i].Data, pkts[i].WireLen = pkts[i].Data[:min(n, len(pkts[i].Data))], uint32(n)
	}
	w := writeChunk(t, dir, pkts, 8<<10, true, 1000)
	if _, err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	list, _ := List(dir)
	lazy, err := OpenLazy(dir, list[0], dec)
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close()
	var frames []Frame
	for i := 0; i < lazy.NumFrames(); i++ {
		f, err := lazy.Frame(i)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	if frames[0].Count < 5*frames[len(frames)-2].Count {
		t.Fatalf("frames not uneven enough to test: %d and %d packets", frames[0].Count, frames[len(frames)-2].Count)
	}
	seqs := []uint64{1 << 62, math.MaxUint64}
	for seq := uint64(0); seq <= 1000+3000+5; seq++ {
		seqs = append(seqs, seq)
	}
	// The guess comes from the chunk's seq range: also with a range that
	// says nothing (an open chunk's), or whose size wraps.
	for _, r := range [][2]uint64{{1000, 3999}, {0, math.MaxUint64}, {5, 5}, {4000, 1000}} {
		lazy.Info.FirstSeq, lazy.Info.LastSeq = r[0], r[1]
		for _, seq := range seqs {
			want := len(frames)
			for i, f := range frames {
				if f.LastSeq >= seq {
					want = i
					break
				}
			}
			if got, err := lazy.SearchSeq(seq); err != nil || got != want {
				t.Fatalf("range %v: SearchSeq(%d) = %d, %v; want %d", r, seq, got, err, want)
			}
		}
	}
}
