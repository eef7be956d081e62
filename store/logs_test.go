package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/store/chunk"
)

// RemovedThrough reads only the log's tail: a long log, and a last line cut
// by a crash, still give the highest removed seq.
func TestRemovedThrough(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := uint64(0); i < 1000; i++ {
		fmt.Fprintf(&b, "removed %d %d 1767225600000000000 1767225700000000000 age 1767225800000000000\n", i*100+1, i*100+100)
	}
	b.WriteString("removed 100001 2000") // cut by a crash
	if err := os.WriteFile(filepath.Join(dir, RetentionLog), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := RemovedThrough(dir)
	if err != nil || got != 100000 {
		t.Fatalf("RemovedThrough = %d, %v; want 100000", got, err)
	}
	if got, err := RemovedThrough(t.TempDir()); got != 0 || err != nil {
		t.Fatalf("no log: %d, %v", got, err)
	}
}

// A removal recorded in an object store (one object per chunk) and the
// local log read back together through the Backend, by first seq; a
// record that does not parse is skipped.
func TestRemovals(t *testing.T) {
	dir := t.TempDir()
	b := Local{Dir: dir}
	ctx := context.Background()
	in := func(first, last uint64) chunk.Info {
		return chunk.Info{FirstSeq: first, LastSeq: last, MinTS: int64(first) * 1e9, MaxTS: int64(last) * 1e9}
	}
	if got, err := Removals(ctx, b); got != nil || err != nil {
		t.Fatalf("empty store: %v, %v", got, err)
	}
	if err := LogRemoved(dir, in(1, 100), "bytes", 5); err != nil {
		t.Fatal(err)
	}
	for _, c := range []chunk.Info{in(201, 300), in(101, 200)} {
		if err := RecordRemoved(ctx, b, c, "age", 7); err != nil {
			t.Fatal(err)
		}
	}
	// The example of the package documentation, byte for byte.
	doc := t.TempDir()
	ex := chunk.Info{FirstSeq: 1, LastSeq: 2688, MinTS: 1767225600082660645, MaxTS: 1767225841811534851}
	if err := RecordRemoved(ctx, Local{Dir: doc}, ex, "age", 1796098685597674778); err != nil {
		t.Fatal(err)
	}
	b2, err := os.ReadFile(filepath.Join(doc, "retention", "00000000000000000001-00000000000000002688.log"))
	if want := "removed 1 2688 1767225600082660645 1767225841811534851 age 1796098685597674778\n"; err != nil || string(b2) != want || len(b2) != 79 {
		t.Fatalf("record %q (%v), want %q", b2, err, want)
	}
	os.WriteFile(filepath.Join(dir, RetentionDir, "00000000000000000301-00000000000000000400.log"), []byte("removed 301 4"), 0o640)
	got, err := Removals(ctx, b)
	want := []Removed{
		{FirstSeq: 1, LastSeq: 100, MinTS: 1e9, MaxTS: 100e9, Reason: "bytes", At: 5},
		{FirstSeq: 101, LastSeq: 200, MinTS: 101e9, MaxTS: 200e9, Reason: "age", At: 7},
		{FirstSeq: 201, LastSeq: 300, MinTS: 201e9, MaxTS: 300e9, Reason: "age", At: 7},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Removals = %+v, %v; want %+v", got, err, want)
	}
}

func TestParseRecord(t *testing.T) {
	for s, ok := range map[string]bool{
		"removed 1 2 3 4 age 5\n":     true,
		"removed 1 2 3 4 age 5":       false, // cut
		"removed 1 2 3 4 age 5\nx":    false,
		"removed 1 2 3 4 age 5\n\n":   false,
		"dropped 1 2 3 4 age 5\n":     false,
		"removed 1 2 3 4 age\n":       false,
		"removed -1 2 3 4 age 5\n":    false,
		"removed 1 2 -3 -4 bytes 5\n": true,
		"":                            false,
	} {
		if _, got := ParseRecord([]byte(s)); got != ok {
			t.Errorf("ParseRecord(%q) ok = %v, want %v", s, got, ok)
		}
	}
}

// FuzzParseRecord: any bytes parse or are refused, without a panic; what
// parses is written back as the same record.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte("removed 1 100 1767225600000000000 1767225700000000000 age 1767225800000000000\n"))
	f.Add([]byte("removed 1 2 3 4 age 5"))
	f.Add([]byte("removed 18446744073709551615 0 -9223372036854775808 0 full 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := ParseRecord(b)
		if !ok {
			return
		}
		line := removedLine(chunk.Info{FirstSeq: r.FirstSeq, LastSeq: r.LastSeq, MinTS: r.MinTS, MaxTS: r.MaxTS}, r.Reason, r.At)
		if r2, ok := ParseRecord([]byte(line)); !ok || r2 != r {
			t.Fatalf("%q parsed as %+v, written back as %q: %+v, %v", b, r, line, r2, ok)
		}
	})
}
