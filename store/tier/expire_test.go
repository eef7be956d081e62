package tier

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/segment"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// all is an uploader's mark under which every chunk is confirmed.
const all = ^uint64(0)

// names lists a store's files, index included, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(out)
	return out
}

// TestExpire: chunks whose newest packet is older than the age go, oldest
// first, stopping at the first younger one (an older one after it stays);
// their frame tables and metadata sidecars, and the segments reaching into
// the seqs gone, go with them; a table, sidecar or segment an interrupted
// run left below the first
// chunk goes on the next run; nothing else is touched.
func TestExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	min := func(m int) int64 { return now.Add(-time.Duration(m) * time.Minute).UnixNano() }
	chunkName := func(first, last uint64, minTS, maxTS int64, ext string) string {
		return fmt.Sprintf("chunk-%020d-%020d-%d-%d%s", first, last, minTS, maxTS, ext)
	}
	dir := t.TempDir()
	files := []string{
		chunkName(1, 100, min(100), min(90), ".pcap"), "chunk-00000000000000000001.ftab", "chunk-00000000000000000001.fmpm", // expired, with its table and sidecar
		chunkName(101, 200, min(90), min(70), ".pcap.zst"), // expired
		chunkName(201, 300, min(70), min(50), ".pcap.zst"), // younger than 60 min: stays
		chunkName(301, 400, min(95), min(65), ".pcap.zst"), // older, but after a younger one: stays
		"uploaded", "retention.log",
		"index/" + segment.FileName(1, 150), "index/" + segment.FileName(151, 250), "index/" + segment.FileName(251, 400),
	}
	for _, f := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o750)
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	b := store.Local{Dir: dir}
	n, err := Expire(context.Background(), b, time.Hour, now, all, quiet)
	want := []string{
		chunkName(201, 300, min(70), min(50), ".pcap.zst"), chunkName(301, 400, min(95), min(65), ".pcap.zst"),
		"index/" + segment.FileName(251, 400), "retention.log", "uploaded",
		"retention/00000000000000000001-00000000000000000100.log", "retention/00000000000000000101-00000000000000000200.log",
	}
	slices.Sort(want)
	if got := names(t, dir); err != nil || n != 2 || !slices.Equal(got, want) {
		t.Fatalf("Expire: %d removed, %v; left\n%s\nwant\n%s", n, err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Each removal is recorded, as the local retention.log says its own
	// ("x": not a line, skipped).
	gone, err := store.Removals(context.Background(), b)
	wantGone := []store.Removed{
		{FirstSeq: 1, LastSeq: 100, MinTS: min(100), MaxTS: min(90), Reason: "age", At: now.UnixNano()},
		{FirstSeq: 101, LastSeq: 200, MinTS: min(90), MaxTS: min(70), Reason: "age", At: now.UnixNano()},
	}
	if err != nil || !slices.Equal(gone, wantGone) {
		t.Fatalf("recorded %+v, %v; want %+v", gone, err, wantGone)
	}
	// Nothing more to do: the same again removes nothing.
	if n, err := Expire(context.Background(), b, time.Hour, now, all, quiet); n != 0 || err != nil || !slices.Equal(names(t, dir), want) {
		t.Fatalf("again: %d, %v, %v", n, err, names(t, dir))
	}
	// What an interrupted run leaves (a table, a segment below the first
	// chunk) goes on the next, even with nothing to expire.
	for _, f := range []string{"chunk-00000000000000000101.ftab", "chunk-00000000000000000101.fmpm", "index/" + segment.FileName(101, 200)} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o640)
	}
	if n, err := Expire(context.Background(), b, time.Hour, now, all, quiet); n != 0 || err != nil || !slices.Equal(names(t, dir), want) {
		t.Fatalf("leftovers: %d, %v, %v", n, err, names(t, dir))
	}
	// A chunk not yet confirmed uploaded (above the uploader's mark: on
	// its way, or failed and retried) while a later one is already
	// listed: its frame table and the segment reaching into it are not
	// leftovers, and stay.
	dir2 := t.TempDir()
	early := []string{"chunk-00000000000000000001.ftab", "chunk-00000000000000000001.fmpm", chunkName(101, 200, min(30), min(20), ".pcap"), "chunk-00000000000000000101.ftab", "chunk-00000000000000000101.fmpm", "index/" + segment.FileName(1, 300)}
	for _, f := range early {
		os.MkdirAll(filepath.Dir(filepath.Join(dir2, f)), 0o750)
		os.WriteFile(filepath.Join(dir2, f), []byte("x"), 0o640)
	}
	slices.Sort(early)
	if n, err := Expire(context.Background(), store.Local{Dir: dir2}, time.Hour, now, 0, quiet); n != 0 || err != nil || !slices.Equal(names(t, dir2), early) {
		t.Fatalf("a chunk on its way: %d, %v, left %v, want %v", n, err, names(t, dir2), early)
	}
	// A run cut before a chunk's deletion leaves its record beside it
	// (never the chunk gone unrecorded); the next run deletes it, and
	// the record is written again, whole.
	dir3 := t.TempDir()
	c := chunkName(1, 100, min(100), min(90), ".pcap.zst")
	os.WriteFile(filepath.Join(dir3, c), []byte("x"), 0o640)
	if n, err := Expire(context.Background(), failDelete{store.Local{Dir: dir3}}, time.Hour, now, all, quiet); n != 0 || err == nil {
		t.Fatalf("a failed deletion: %d, %v", n, err)
	}
	rec := "retention/00000000000000000001-00000000000000000100.log"
	if got := names(t, dir3); !slices.Equal(got, []string{c, rec}) {
		t.Fatalf("after a failed deletion: %v", got)
	}
	if n, err := Expire(context.Background(), store.Local{Dir: dir3}, time.Hour, now, all, quiet); n != 1 || err != nil || !slices.Equal(names(t, dir3), []string{rec}) {
		t.Fatalf("the next run: %d, %v, left %v", n, err, names(t, dir3))
	}
	// Age 0 keeps everything.
	if n, err := Expire(context.Background(), b, 0, now.Add(1000*time.Hour), all, quiet); n != 0 || err != nil || !slices.Equal(names(t, dir), want) {
		t.Fatalf("age 0: %d, %v, %v", n, err, names(t, dir))
	}
}

// failDelete is a backend whose deletions fail (a crash before them).
type failDelete struct{ store.Backend }

func (failDelete) Delete(context.Context, string) error { return fmt.Errorf("cut") }
