package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

func backend(t *testing.T) *Backend {
	t.Helper()
	_, s := setup(t, nil)
	cache, err := CacheFor(t.TempDir(), s.cfg.Bucket, s.cfg.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &Backend{S: s, Cache: cache, ctx: context.Background()}
}

// The S3 backend lists a store's directories as the local one does (only
// direct children, hidden names left out), says fs.ErrNotExist for a
// missing object, and reads by ranges: ranges announced with Prefetch are
// read coalesced (neighbours less than MaxGap apart in one GET), others
// one GET each.
func TestBackend(t *testing.T) {
	ctx := context.Background()
	b := backend(t)
	data := randomBytes(7, 3<<20)
	for _, name := range []string{"chunk-a", "index/" + segment.FileName(1, 9), ".hidden", "index/deeper/x"} {
		if _, err := b.Put(ctx, name, bytes.NewReader(data[:1000]), 1000); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(ctx, "big", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	root, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := b.List(ctx, store.IndexDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range append(root, idx...) {
		names = append(names, o.Name)
	}
	if want := []string{"big", "chunk-a", "index/" + segment.FileName(1, 9)}; !slices.Equal(names, want) {
		t.Errorf("listing %q, want %q", names, want)
	}
	if _, err := b.Stat(ctx, "nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing object: %v, want fs.ErrNotExist", err)
	}
	if _, err := b.Open(ctx, "nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing object: %v, want fs.ErrNotExist", err)
	}
	if o, err := b.Stat(ctx, "big"); err != nil || o.Size != int64(len(data)) || o.CRC32C == "" {
		t.Errorf("Stat: %+v %v", o, err)
	} else if sum, _ := store.CRC32C(bytes.NewReader(data)); sum != o.CRC32C {
		t.Errorf("Stat CRC-32C %s, the data's %s", o.CRC32C, sum)
	}

	f, err := b.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	// Ten frames of 10 KiB, 1 KiB apart, then two far away: 3 GETs.
	var rs []store.Range
	for i := int64(0); i < 10; i++ {
		rs = append(rs, store.Range{Off: 100_000 + i*11<<10, N: 10 << 10})
	}
	rs = append(rs, store.Range{Off: 1 << 20, N: 5000}, store.Range{Off: 2 << 20, N: 70_000})
	f.(store.Prefetcher).Prefetch(rs)
	n0, _ := b.Transfer()
	for _, r := range rs {
		p := make([]byte, r.N)
		if _, err := f.ReadAt(p, r.Off); err != nil || !bytes.Equal(p, data[r.Off:r.Off+r.N]) {
			t.Fatalf("ReadAt %d+%d: %v, bytes equal %v", r.Off, r.N, err, bytes.Equal(p, data[r.Off:r.Off+r.N]))
		}
	}
	if n1, _ := b.Transfer(); n1-n0 != 3 {
		t.Errorf("12 prefetched ranges read with %d GETs, want 3", n1-n0)
	}
	// Not announced: a GET of its own; past the end: io.EOF.
	p := make([]byte, 100)
	if _, err := f.ReadAt(p, 500_000); err != nil || !bytes.Equal(p, data[500_000:500_100]) {
		t.Errorf("ReadAt outside the prefetched ranges: %v", err)
	}
	if n, err := f.ReadAt(p, int64(len(data))-10); n != 10 || err != io.EOF {
		t.Errorf("ReadAt across the end: %d, %v; want 10, io.EOF", n, err)
	}
	f.Close()
}

// SyncIndex fetches the segments asked for into the cache, leaves the
// others, and drops cached segments the bucket no longer lists.
func TestSyncIndex(t *testing.T) {
	ctx := context.Background()
	b := backend(t)
	for _, r := range [][2]uint64{{1, 100}, {101, 200}, {201, 300}} {
		name := "index/" + segment.FileName(r[0], r[1])
		if _, err := b.Put(ctx, name, strings.NewReader(name), int64(len(name))); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := b.SyncIndex(ctx, func(first, last uint64) bool { return first > 100 })
	if err != nil {
		t.Fatal(err)
	}
	got := func() []string {
		ents, _ := segment.List(dir)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name)
		}
		return out
	}
	if want := []string{segment.FileName(101, 200), segment.FileName(201, 300)}; !slices.Equal(got(), want) {
		t.Fatalf("cached %q, want %q", got(), want)
	}
	b2, _ := os.ReadFile(filepath.Join(dir, segment.FileName(101, 200)))
	if string(b2) != "index/"+segment.FileName(101, 200) {
		t.Errorf("cached segment holds %q", b2)
	}
	if err := b.Delete(ctx, "index/"+segment.FileName(201, 300)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SyncIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{segment.FileName(1, 100), segment.FileName(101, 200)}; !slices.Equal(got(), want) {
		t.Errorf("after a deletion in the bucket, cached %q, want %q", got(), want)
	}
}

// Bucket retention's records read through the S3 backend as from a
// directory, and a second time from the cache, with no GET.
func TestRemovalRecords(t *testing.T) {
	ctx := context.Background()
	b := backend(t)
	ins := []chunk.Info{{FirstSeq: 1, LastSeq: 10, MinTS: 5, MaxTS: 6}, {FirstSeq: 11, LastSeq: 20, MinTS: 7, MaxTS: 8}}
	for _, in := range ins {
		if err := store.RecordRemoved(ctx, b, in, "age", 9); err != nil {
			t.Fatal(err)
		}
	}
	want := []store.Removed{{FirstSeq: 1, LastSeq: 10, MinTS: 5, MaxTS: 6, Reason: "age", At: 9}, {FirstSeq: 11, LastSeq: 20, MinTS: 7, MaxTS: 8, Reason: "age", At: 9}}
	for try := range 2 {
		n0, _ := b.Transfer()
		got, err := store.Removals(ctx, b)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("read %d: %+v, %v; want %+v", try, got, err, want)
		}
		if n1, _ := b.Transfer(); try == 1 && n1 != n0 {
			t.Errorf("records read again with %d GETs, want none (cached)", n1-n0)
		}
	}
}

// Trim keeps the cache under its bound, least recently used first.
func TestCacheTrim(t *testing.T) {
	c := &Cache{Dir: t.TempDir(), MaxBytes: 2500}
	for _, n := range []string{"tails/a", "tails/b", "tails/c"} {
		c.put(n, make([]byte, 1000))
	}
	c.get("tails/a") // used: kept
	c.Trim()
	var left []string
	for _, n := range []string{"tails/a", "tails/b", "tails/c"} {
		if _, err := os.Stat(c.path(n)); err == nil {
			left = append(left, n)
		}
	}
	if len(left) != 2 || !slices.Contains(left, "tails/a") {
		t.Errorf("left %q, want 2 files including tails/a", left)
	}
	if st, err := os.Stat(c.path("tails/a")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("cache file mode: %v %v, want 0640", st.Mode(), err)
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok, bad            bool
	}{
		{"s3://b/fleet/node1", "b", "fleet/node1", true, false},
		{"s3://b/fleet/node1/", "b", "fleet/node1", true, false},
		{"s3://b", "b", "", true, false},
		{"/var/lib/fmcap/store", "", "", false, false},
		{"s3:///x", "", "", true, true},
		{"s3://b/x?y=1", "", "", true, true},
	} {
		cfg, ok, err := ParseURL(tc.in, Config{})
		if ok != tc.ok || (err != nil) != tc.bad || !tc.bad && (cfg.Bucket != tc.bucket || cfg.Prefix != tc.prefix) {
			t.Errorf("%q: %+v %v %v", tc.in, cfg, ok, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://b/p", "s3://", "s3://b/%zz", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg, ok, err := ParseURL(s, Config{})
		if ok && err == nil && cfg.Bucket == "" {
			t.Fatalf("%q: no bucket and no error", s)
		}
	})
}

// FuzzTailLen: any end of an object gives a length within the object or
// not ok, never a panic.
func FuzzTailLen(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0x80, 0xb1, 0xea, 0x92, 0x8f}, int64(1000))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x80, 0xb1, 0xea, 0x92, 0x8f}, int64(1<<40))
	f.Fuzz(func(t *testing.T, end []byte, size int64) {
		if need, ok := tailLen(end, size); ok && (need > size || need < 0) {
			t.Fatalf("need %d of %d", need, size)
		}
	})
}
