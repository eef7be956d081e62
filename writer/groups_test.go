package writer

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/store/chunk"
)

// mixPacket builds packet i in buf (1514 bytes): sizes as bench/gen's web
// mix (40 % 66-byte ACKs, 45 % 1514-byte segments, 15 % 80..399 bytes: 760
// bytes on average, so a 64-seq group is about 48 KB, more than a 32 KiB
// frame), or 1514 bytes each with full; i at byte 42, so the store can be
// checked seq by seq; after it zeros, or random bytes with random (which
// zstd cannot shrink). The same i gives the same packet.
func mixPacket(i int, full, random bool, buf []byte) []byte {
	x := (uint64(i) + 1) * 0xD6E8FEB86659FD93 // a start per packet, far from the others' sequences
	x ^= x >> 32
	x *= 0xD6E8FEB86659FD93
	next := func() uint64 { // splitmix64
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
		z = (z ^ z>>27) * 0x94D049BB133111EB
		return z ^ z>>31
	}
	l := 1514
	if r := next() % 100; !full && r < 40 {
		l = 66
	} else if !full && r >= 85 {
		l = 80 + int(next()%320)
	}
	p := buf[:l]
	clear(p)
	copy(p, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0})
	binary.BigEndian.PutUint64(p[42:], uint64(i))
	if random {
		for k := 50; k+8 <= l; k += 8 {
			binary.LittleEndian.PutUint64(p[k:], next())
		}
	}
	return p
}

// produceMix writes packets mixPacket(0..n-1) into the ring and closes it.
func produceMix(t *testing.T, path string, n int, full, random bool) {
	t.Helper()
	producePackets(t, path, 0, n, true, func(i int, buf []byte) []byte { return mixPacket(i, full, random, buf) }, 1514)
	if t.Failed() {
		t.FailNow()
	}
}

// TestGroupsInOneFrame: the writer cuts frames (and chunks) only at seq-group
// boundaries, so a group the index keeps is one frame to read even where a
// group is larger than the frame size; only a group larger than maxFrame is
// cut inside. The plan's precision at frame level follows: for a filter
// matching a known set of packets, and a plan keeping exactly the groups
// holding a match (what the flow tables give, query.TestFlowPlanPrecision),
// the frames read (those overlapping a kept group) are the frames holding a
// match.
func TestGroupsInOneFrame(t *testing.T) {
	for _, tc := range []struct {
		name      string
		full      bool
		random    bool // payloads: random (frames not grown) or zeros
		frameSize int
		wantWhole bool // every group in one frame
	}{
		{"web mix, groups over the frame size", false, true, 32 << 10, true},
		{"web mix, frames grown", false, false, 32 << 10, true},
		{"web mix, several groups a frame", false, true, 256 << 10, true},
		{"full-size packets, groups over maxFrame", true, true, 8 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := newTestRing(t, 1<<26, 1)
			store := filepath.Join(t.TempDir(), "store")
			const n = 30_000
			produceMix(t, ring, n, tc.full, tc.random)
			cfg := testConfig(t, ring, store)
			cfg.FrameSize, cfg.ChunkSize = tc.frameSize, 4<<20
			if err := Run(context.Background(), cfg, quiet); err != nil {
				t.Fatal(err)
			}
			frames := storedFrames(t, store, n, tc.full, tc.random)
			// frameOf[s] is the index (over the whole store) of the frame
			// holding seq s; seqs start at 1.
			frameOf := make([]int, n+1)
			for i, f := range frames {
				if f.DSize > uint32(maxFrame(tc.frameSize)+chunk.MaxRecord+len(chunkHeader)) {
					t.Errorf("frame %d holds %d bytes, over maxFrame %d and a packet", i, f.DSize, maxFrame(tc.frameSize))
				}
				for s := f.FirstSeq; s <= f.LastSeq; s++ {
					frameOf[s] = i
				}
			}
			split := 0
			for g := uint64(0); g*chunk.SeqGroup <= n; g++ {
				lo, hi := max(g*chunk.SeqGroup, 1), min(g*chunk.SeqGroup+chunk.SeqGroup-1, n)
				if frameOf[lo] != frameOf[hi] {
					split++
				}
			}
			if tc.wantWhole && split > 0 {
				t.Errorf("%d groups split between frames; want 0", split)
			}
			if !tc.wantWhole && split == 0 {
				t.Errorf("no group over maxFrame was cut")
			}
			if tc.wantWhole {
				read, held := framesForMatches(frameOf, n, 300)
				t.Logf("%d frames; for 1 packet in 300: frames read %d, frames holding a match %d", len(frames), read, held)
				if read != held {
					t.Errorf("frames read %d, frames holding a match %d: want equal", read, held)
				}
			}
		})
	}
}

// storedFrames is every frame of the store's chunks, in seq order, after
// checking that seqs 1..n are there once each, mixPacket(s-1) in seq s.
func storedFrames(t *testing.T, store string, n int, full, random bool) []chunk.Frame {
	t.Helper()
	list, err := chunk.List(store)
	if err != nil {
		t.Fatal(err)
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	var frames []chunk.Frame
	next := uint64(1)
	buf := make([]byte, 1514)
	for _, in := range list {
		rd, err := chunk.OpenReader(store, in, dec)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range rd.Table.Frames {
			b, err := rd.ReadFrame(i, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = chunk.Packets(b, i == 0, func(p chunk.Packet) bool {
				if want := mixPacket(int(next-1), full, random, buf); !bytes.Equal(p.Data, want) {
					t.Fatalf("chunk %s frame %d: seq %d holds %d bytes, not packet %d", in.Name, i, next, len(p.Data), next-1)
				}
				next++
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f)
		}
		rd.Close()
	}
	if next != uint64(n)+1 {
		t.Fatalf("store holds seqs 1..%d, want 1..%d", next-1, n)
	}
	return frames
}

// framesForMatches picks one packet in every about matches (seeded) as a
// filter's matches and counts the frames a plan keeping exactly the groups
// holding a match reads, and the frames that hold a match.
func framesForMatches(frameOf []int, n, every int) (read, held int) {
	rng := rand.New(rand.NewSource(11))
	readSet, heldSet := map[int]bool{}, map[int]bool{}
	for s := 1; s <= n; s++ {
		if rng.Intn(every) != 0 {
			continue
		}
		heldSet[frameOf[s]] = true
		g := uint64(s) / chunk.SeqGroup * chunk.SeqGroup
		for q := max(g, 1); q < g+chunk.SeqGroup && q <= uint64(n); q++ {
			readSet[frameOf[q]] = true
		}
	}
	return len(readSet), len(heldSet)
}

// TestPlainFrames: traffic zstd cannot shrink (random payloads) is stored in
// raw zstd blocks but for the probes; traffic that compresses well (the
// web mix with zero payloads) gets longer frames: two groups or more,
// where 32 KiB frames would hold one. Either way every
// packet reads back byte for byte, and zstd -dc of a chunk is its pcap.
func TestPlainFrames(t *testing.T) {
	for _, random := range []bool{true, false} {
		ring := newTestRing(t, 1<<26, 1)
		store := filepath.Join(t.TempDir(), "store")
		const n = 20_000
		full := random
		produceMix(t, ring, n, full, random)
		cfg := testConfig(t, ring, store)
		cfg.FrameSize, cfg.ChunkSize = 32<<10, 8<<20
		if err := Run(context.Background(), cfg, quiet); err != nil {
			t.Fatal(err)
		}
		frames := storedFrames(t, store, n, full, random)
		plain, long := 0, 0 // frames stored plain; frames of several groups
		for _, f := range frames {
			if int(f.CSize-f.Meta) == chunk.StoredSize(int(f.DSize)) {
				plain++
			}
			if f.Count > chunk.SeqGroup {
				long++
			}
		}
		t.Logf("random=%v: %d frames, %d plain, %d of several groups", random, len(frames), plain, long)
		if random && (plain < len(frames)*3/4 || plain == len(frames)) {
			t.Errorf("random payloads: %d of %d frames plain, want most but the probes", plain, len(frames))
		}
		if !random && (plain != 0 || long < len(frames)/2) {
			t.Errorf("compressible payloads: %d frames plain, %d of %d long; want 0 and most", plain, long, len(frames))
		}
		if _, err := exec.LookPath("zstd"); err != nil {
			continue
		}
		list, _ := chunk.List(store)
		in := list[0]
		got, err := exec.Command("zstd", "-dc", filepath.Join(store, in.Name)).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := chunk.PcapHeader()
		buf := make([]byte, 1514)
		for s := in.FirstSeq; s <= in.LastSeq; s++ {
			p := mixPacket(int(s-1), full, random, buf)
			want, _ = chunk.AppendPacket(want, testpkt.Base+int64(s-1)*1000, uint32(len(p)), p)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("random=%v: zstd -dc %s: %d bytes, want the pcap of seqs %d..%d (%d bytes)", random, in.Name, len(got), in.FirstSeq, in.LastSeq, len(want))
		}
	}
}
