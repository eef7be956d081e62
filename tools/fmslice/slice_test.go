package main

import (
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
	buf := make([]byte, 256)
	seq := uint64(1)
	for c := 0; c < chunks; c++ {
		w, err := chunk.Create(dir, seq, false, 7)
		if err != nil {
			t.Fatal(err)
		}
		var raw []byte
		f := chunk.Frame{FirstSeq: seq}
		for i := 0; i < n; i++ {
			k := int(seq - 1)
			p := testpkt.Packet(k, buf)
			var ts int64
			if i == 0 {
				raw = chunk.PcapHeader()
			}
			raw, ts = chunk.AppendPacket(raw, testpkt.Base+int64(k)*1000, uint32(len(p)), p)
			if i == 0 {
				f.MinTS = ts
			}
			f.MaxTS, f.LastSeq = ts, seq
			f.Count++
			seq++
		}
		f.DSize, f.Sum = uint32(len(raw)), chunk.Sum(raw)
		if err := w.Append(raw, f); err != nil {
			t.Fatal(err)
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
