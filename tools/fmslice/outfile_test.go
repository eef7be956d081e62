package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestOutFile: -w over an existing file leaves the answer alone in it,
// a run that writes nothing leaves it empty, and /dev/null and new files
// are written as ever.
func TestOutFile(t *testing.T) {
	dir := t.TempDir()
	old := bytes.Repeat([]byte("old answer "), 100000)
	for _, c := range []struct {
		name  string
		exist bool
		write []byte
	}{
		{"over a longer file", true, []byte("the new answer")},
		{"over a file, nothing written", true, nil},
		{"a new file", false, []byte("the new answer")},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if c.exist {
				if err := os.WriteFile(path, old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			w, done, err := sliceOutput(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.write != nil {
				if _, err := w.Write(c.write); err != nil {
					t.Fatal(err)
				}
			}
			if err := done(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.write) {
				t.Fatalf("file holds %d bytes (%.20q...), want %q", len(got), got, c.write)
			}
		})
	}
	w, done, err := sliceOutput(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := done(); err != nil {
		t.Fatal(err)
	}
}
