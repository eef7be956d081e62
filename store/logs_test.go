package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
