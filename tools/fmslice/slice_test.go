package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fmcap/fmcap/internal/testpkt"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

// testStore writes chunks uncompressed chunks of n testpkt packets each
// (one frame a chunk) and returns the store's listing.
func testStore(t *testing.T, dir string, chunks, n int) []chunk.Info {
	t.Helper()
	return framesStore(t, dir, chunks, 1, n, nil)
}

type countSink struct{ n int }

func (s *countSink) write(int64, uint32, []byte) error { s.n++; return nil }

// TestChunkRemovedMidQuery: a chunk retention removes between the listing
// and its opening is not damage when the retention log says so (exit 0
// and a notice); a chunk that vanished without a word is. (fmslice flows
// reads through sliceList too.)
func TestChunkRemovedMidQuery(t *testing.T) {
	for _, logged := range []bool{true, false} {
		dir := t.TempDir()
		list := testStore(t, dir, 3, 100)
		if logged {
			if err := fmstore.LogRemoved(dir, list[0], "bytes", 1); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range list[0].Files() {
			if err := os.Remove(filepath.Join(dir, f)); err != nil {
				t.Fatal(err)
			}
		}
		q := &sliceReq{store: dir, from: math.MinInt64, to: math.MaxInt64}
		var out countSink
		dec := chunk.NewDecoder()
		res, err := sliceList(q, list, &out, dec)
		if err != nil {
			t.Fatal(err)
		}
		if out.n != 200 || res.packets != 200 {
			t.Fatalf("logged %v: %d packets out, want 200", logged, out.n)
		}
		if logged && (len(res.damaged) != 0 || res.gone != 1) || !logged && (len(res.damaged) != 1 || res.gone != 0) {
			t.Fatalf("logged %v: damaged %v, gone %d", logged, res.damaged, res.gone)
		}
	}
}

// framesStore writes chunks uncompressed chunks of frames frames of per
// testpkt packets each; damage, when set, may change a frame's pcap bytes
// (its checksum is taken after, as a writer's bug would leave it).
func framesStore(t *testing.T, dir string, chunks, frames, per int, damage func(c, f int, raw []byte) []byte) []chunk.Info {
	t.Helper()
	buf := make([]byte, 256)
	seq := uint64(1)
	for c := 0; c < chunks; c++ {
		w, err := chunk.Create(dir, seq, false, 7)
		if err != nil {
			t.Fatal(err)
		}
		for fi := 0; fi < frames; fi++ {
			var raw []byte
			if fi == 0 {
				raw = chunk.PcapHeader()
			}
			f := chunk.Frame{FirstSeq: seq}
			for i := 0; i < per; i++ {
				k := int(seq - 1)
				p := testpkt.Packet(k, buf)
				var ts int64
				raw, ts = chunk.AppendPacket(raw, testpkt.Base+int64(k)*1000, uint32(len(p)), p)
				if i == 0 {
					f.MinTS = ts
				}
				f.MaxTS, f.LastSeq = ts, seq
				f.Count++
				seq++
			}
			if damage != nil {
				raw = damage(c, fi, raw)
			}
			f.DSize, f.Sum = uint32(len(raw)), chunk.Sum(raw)
			if err := w.Append(raw, f); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.Finalize(); err != nil {
			t.Fatal(err)
		}
	}
	list, err := chunk.List(dir)
	if err != nil || len(list) != chunks {
		t.Fatalf("listing: %v, %d chunks", err, len(list))
	}
	return list
}

// TestWholeFrameRuns: a time slice to plain pcap writes the frames wholly
// in its range as their stored records (sliceReq.runs); the bytes, the
// packet count and what is reported damaged are those of the packet by
// packet path, for the whole store, for a range cutting frames, and with
// a frame whose records break off half-way (its packets before the damage
// go out, and it is reported).
func TestWholeFrameRuns(t *testing.T) {
	const chunks, frames, per = 3, 5, 40
	broken := func(c, f int, raw []byte) []byte {
		if c == 1 && f == 2 {
			// The 21st record claims more bytes than the frame holds.
			at := 0
			for i := 0; i < 20; i++ {
				at += 16 + int(binary.LittleEndian.Uint32(raw[at+8:]))
			}
			binary.LittleEndian.PutUint32(raw[at+8:], 60000)
		}
		return raw
	}
	for _, c := range []struct {
		name     string
		damage   func(c, f int, raw []byte) []byte
		from, to int64
		whole    int // frames written whole with runs
	}{
		{"whole store", nil, math.MinInt64, math.MaxInt64, chunks * frames},
		{"a range cutting frames", nil, testpkt.Base + 30*1000, testpkt.Base + 470*1000, 10}, // frames 1-10 of packets 0-599 by 40
		{"a damaged frame", broken, math.MinInt64, math.MaxInt64, chunks*frames - 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			list := framesStore(t, dir, chunks, frames, per, c.damage)
			var outs [2]bytes.Buffer
			var res [2]*result
			for i, runs := range []bool{false, true} {
				ps, err := newPcapSink(&outs[i])
				if err != nil {
					t.Fatal(err)
				}
				q := &sliceReq{store: dir, from: c.from, to: c.to, runs: runs}
				dec := chunk.NewDecoder()
				res[i], err = sliceList(q, list, ps, dec)
				dec.Close()
				if err != nil {
					t.Fatal(err)
				}
				if err := ps.flush(); err != nil {
					t.Fatal(err)
				}
			}
			if res[0].wholeFrames != 0 || res[1].wholeFrames != c.whole {
				t.Fatalf("frames written whole: %d without runs, %d with; want 0 and %d", res[0].wholeFrames, res[1].wholeFrames, c.whole)
			}
			if !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) {
				t.Fatalf("outputs differ: %d and %d bytes", outs[0].Len(), outs[1].Len())
			}
			if res[0].packets != res[1].packets || res[0].frames != res[1].frames || res[0].matchFrames != res[1].matchFrames || len(res[0].damaged) != len(res[1].damaged) {
				t.Fatalf("results differ: packets %d/%d, frames %d/%d, match frames %d/%d, damaged %d/%d",
					res[0].packets, res[1].packets, res[0].frames, res[1].frames, res[0].matchFrames, res[1].matchFrames, len(res[0].damaged), len(res[1].damaged))
			}
			want := 0
			for _, r := range [][2]int64{{c.from, c.to}} {
				for k := 0; k < chunks*frames*per; k++ {
					if ts := testpkt.Base + int64(k)*1000; ts >= r[0] && ts < r[1] {
						want++
					}
				}
			}
			if c.damage != nil {
				want -= per - 20 // the broken frame's packets from the damage on
				if len(res[1].damaged) != 1 {
					t.Fatalf("damaged: %v, want the one frame", res[1].damaged)
				}
			}
			if res[1].packets != want {
				t.Fatalf("%d packets, want %d", res[1].packets, want)
			}
			n := 0
			if err := chunk.Packets(outs[1].Bytes(), true, func(chunk.Packet) bool { n++; return true }); err != nil || n != want {
				t.Fatalf("output: %d packets (%v), want %d", n, err, want)
			}
		})
	}
}
