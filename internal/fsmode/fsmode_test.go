package fsmode

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// With umask 0, what the helpers create still has exactly Dir and File.
func TestModesWithUmask0(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(filepath.Join(dir, "f"), os.O_WRONLY|os.O_CREATE|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for p, want := range map[string]os.FileMode{filepath.Join(base, "a"): Dir, dir: Dir, filepath.Join(dir, "f"): File} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: got %o, want %o", p, got, want)
		}
	}
}

// SetUmask covers create sites that ask for 0644 or 0666 themselves.
func TestSetUmask(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	if prev := SetUmask(); prev != 0 {
		t.Fatalf("SetUmask returned %o, want the old umask 0", prev)
	}
	dir := t.TempDir()
	for _, m := range []os.FileMode{0o644, 0o666} {
		p := filepath.Join(dir, m.String())
		if err := os.WriteFile(p, nil, m); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != File {
			t.Errorf("file created %o: got %o, want %o", m, st.Mode().Perm(), File)
		}
	}
}
