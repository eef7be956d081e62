package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRename(t *testing.T) {
	errSync := errors.New("planted fsync failure")
	for _, tc := range []struct {
		name     string
		failSync bool
	}{{"ok", false}, {"directory fsync fails", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp, final := filepath.Join(dir, ".x.tmp"), filepath.Join(dir, "x")
			if err := os.WriteFile(tmp, []byte("data"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.failSync {
				syncDir = func(int) error { return errSync }
				t.Cleanup(func() { syncDir = unix.Fsync })
			}
			err := Rename(tmp, final)
			if got := errors.Is(err, errSync); got != tc.failSync {
				t.Errorf("Rename: err %v, want the fsync failure reported: %v", err, tc.failSync)
			}
			if !tc.failSync && err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(final); err != nil || string(b) != "data" {
				t.Errorf("after Rename: %q, %v; want %q", b, err, "data")
			}
			if _, err := os.Stat(tmp); !os.IsNotExist(err) {
				t.Errorf("the old name is still there: %v", err)
			}
		})
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("SyncDir of a missing directory: no error")
	}
}
