package store

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// Retention removes the chunks past the age limit oldest first, logs each
// before it goes, takes the index segments that reach into them along, and
// leaves newer chunks, the open chunk and their segments alone.
func TestRetentionByAge(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_767_225_600, 0)
	old, young := now.Add(-2*time.Hour).UnixNano(), now.Add(-time.Minute).UnixNano()
	chunks := []string{
		chunk.FinalName(1, 100, old-10, old, true),
		chunk.FinalName(101, 200, old, old+1, true),
		chunk.FinalName(201, 300, young, young+1, true),
	}
	for _, name := range append(chunks, ".open-00000000000000000301.pcap.zst") {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 1000), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsmode.MkdirAll(Index(dir)); err != nil {
		t.Fatal(err)
	}
	segs := []string{segment.FileName(1, 150), segment.FileName(151, 250), segment.FileName(251, 400)}
	for _, name := range segs {
		if err := os.WriteFile(filepath.Join(Index(dir), name), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	r := &Retention{Dir: dir, MaxAge: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if !r.Enabled() {
		t.Fatal("a retention with MaxAge is not enabled")
	}
	n, err := r.Enforce(now, false)
	if err != nil || n != 2 {
		t.Fatalf("Enforce: removed %d, %v; want 2, nil", n, err)
	}
	list, err := chunk.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, in := range list {
		left = append(left, in.Name)
	}
	if want := []string{chunks[2], ".open-00000000000000000301.pcap.zst"}; !slices.Equal(left, want) {
		t.Errorf("chunks left %q, want %q", left, want)
	}
	ents, _ := os.ReadDir(Index(dir))
	var segsLeft []string
	for _, e := range ents {
		segsLeft = append(segsLeft, e.Name())
	}
	if want := segs[2:]; !slices.Equal(segsLeft, want) { // 151-250 reaches into the removed 101-200
		t.Errorf("segments left %q, want %q", segsLeft, want)
	}
	gone, err := RemovedRanges(dir)
	if err != nil || len(gone) != 2 || gone[0].LastSeq != 100 || gone[1].LastSeq != 200 || gone[1].Reason != "age" {
		t.Errorf("retention log: %+v, %v", gone, err)
	}
	if c, b := r.Totals(); c != 2 || b != 2000 {
		t.Errorf("Totals = %d chunks, %d bytes; want 2, 2000", c, b)
	}
	// Full disk: the oldest finished chunk goes whatever the limits.
	if n, err := r.Enforce(now, true); err != nil || n != 1 {
		t.Errorf("Enforce(full): removed %d, %v; want 1", n, err)
	}
	if through, err := RemovedThrough(dir); err != nil || through != 300 {
		t.Errorf("RemovedThrough = %d, %v; want 300", through, err)
	}
}
