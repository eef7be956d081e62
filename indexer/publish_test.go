package indexer

import (
	"os"
	"path/filepath"
	"testing"

	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

func segmentOver(first, last uint64) *segment.Builder {
	b := segment.NewBuilder(first, segment.DefaultGroupSize)
	var p segment.Packet
	for s := first; s <= last; s++ {
		b.Add(s, int64(s)*1000, &p)
	}
	return b
}

// A segment published after retention removed the chunks it reaches into
// (the race between retention's sweep and the indexer's rename) is removed
// by publish itself; one past the removed seqs stays.
func TestPublishAfterRetention(t *testing.T) {
	store := t.TempDir()
	dir := filepath.Join(store, "index")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fmstore.LogRemoved(store, chunk.Info{FirstSeq: 1, LastSeq: 1000, MinTS: 1, MaxTS: 2}, "bytes", 3); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		first, last uint64
		kept        bool
	}{{500, 1500, false}, {1000, 1200, false}, {1001, 1500, true}} {
		kept, err := publish(segmentOver(tc.first, tc.last), dir, store)
		if err != nil || kept != tc.kept {
			t.Fatalf("segment %d-%d: kept %v err %v, want kept %v", tc.first, tc.last, kept, err, tc.kept)
		}
	}
	segs, err := segment.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0].First != 1001 || segs[0].Last != 1500 {
		t.Fatalf("segments left: %+v, want only 1001-1500", segs)
	}
	// No retention log: nothing removed, everything kept.
	other := t.TempDir()
	if kept, err := publish(segmentOver(1, 10), other, other); !kept || err != nil {
		t.Fatalf("store without retention.log: kept %v err %v", kept, err)
	}
}
