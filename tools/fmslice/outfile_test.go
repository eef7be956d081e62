package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
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
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
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

// TestOutFileReplaced: over a previous answer, -w FILE is a new file
// (replaceAnswer) that keeps what O_TRUNC kept: the permissions, whatever
// the umask; and where a new inode would change more than the content (a
// second link, a symlink) O_TRUNC is used, so the other names see the new
// answer. Nothing is left beside FILE.
func TestOutFileReplaced(t *testing.T) {
	dir := t.TempDir()
	old := bytes.Repeat([]byte("old answer "), 100000)
	answer := []byte("the new answer")
	write := func(t *testing.T, path string) {
		t.Helper()
		w, done, err := sliceOutput(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(answer); err != nil {
			t.Fatal(err)
		}
		if err := done(); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(t *testing.T, path string, want []byte) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s holds %d bytes (%.20q...), want %q", filepath.Base(path), len(got), got, want)
		}
	}

	t.Run("permissions kept", func(t *testing.T) {
		path := filepath.Join(dir, "perm.pcap")
		if err := os.WriteFile(path, old, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o604); err != nil { // what no umask gives
			t.Fatal(err)
		}
		var before syscall.Stat_t
		syscall.Stat(path, &before)
		write(t, path)
		holds(t, path, answer)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o604 {
			t.Fatalf("mode %v, want 0604", fi.Mode().Perm())
		}
		if fi.Sys().(*syscall.Stat_t).Ino == before.Ino {
			t.Fatal("same inode: the previous answer was emptied in place, not replaced")
		}
	})
	t.Run("a second link sees the new answer", func(t *testing.T) {
		path, other := filepath.Join(dir, "linked.pcap"), filepath.Join(dir, "other.pcap")
		if err := os.WriteFile(path, old, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(path, other); err != nil {
			t.Fatal(err)
		}
		write(t, path)
		holds(t, path, answer)
		holds(t, other, answer)
	})
	t.Run("through a symlink", func(t *testing.T) {
		target, link := filepath.Join(dir, "target.pcap"), filepath.Join(dir, "link.pcap")
		if err := os.WriteFile(target, old, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		write(t, link)
		holds(t, target, answer)
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the symlink is gone: %v", err)
		}
	})
	t.Run("the hidden name taken", func(t *testing.T) {
		// Someone's file (or a symlink) under the name the new answer is
		// made under: left alone, FILE emptied in place instead.
		path := filepath.Join(dir, "taken.pcap")
		if err := os.WriteFile(path, old, 0o640); err != nil {
			t.Fatal(err)
		}
		var before syscall.Stat_t
		syscall.Stat(path, &before)
		hidden := filepath.Join(dir, ".taken.pcap.fmslice-"+strconv.Itoa(os.Getpid()))
		if err := os.Symlink(filepath.Join(dir, "elsewhere"), hidden); err != nil {
			t.Fatal(err)
		}
		write(t, path)
		holds(t, path, answer)
		var after syscall.Stat_t
		syscall.Stat(path, &after)
		if after.Ino != before.Ino {
			t.Fatal("replaced though the hidden name was taken")
		}
		if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); !os.IsNotExist(err) {
			t.Fatalf("written through the symlink: %v", err)
		}
		os.Remove(hidden)
	})
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
