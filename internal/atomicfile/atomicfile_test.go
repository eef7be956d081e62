package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// names makes tempSuffix return n0, n1, ... so that a test knows every
// temporary name Write can use, and can plant something at each.
func names(t *testing.T) func(i int) string {
	t.Helper()
	old := tempSuffix
	next := 0
	tempSuffix = func() string { s := fmt.Sprintf("n%d", next); next++; return s }
	t.Cleanup(func() { tempSuffix = old })
	return func(i int) string { return fmt.Sprintf(".f.tmp-n%d", i) }
}

func TestWrite(t *testing.T) {
	root := os.Geteuid() == 0
	errSync := errors.New("injected directory fsync error")
	for _, tc := range []struct {
		name     string
		umask    int
		existing fs.FileMode // 0: no file there before
		gid      int         // chown the existing file to this gid first (root only)
		opt      Options
		plant    int  // symlinks planted at the first plant temp names
		linkDst  bool // the target itself is a symlink
		failSync bool
		wantMode fs.FileMode
		wantErr  string // "" for success
	}{
		{name: "new file umask 0", umask: 0, opt: Options{Mode: 0o640}, wantMode: 0o640},
		{name: "new file umask 077", umask: 0o77, opt: Options{Mode: 0o644}, wantMode: 0o644},
		{name: "new file default mode", umask: 0, wantMode: 0o600},
		{name: "new file with keep", umask: 0o77, opt: Options{Mode: 0o640, Keep: true}, wantMode: 0o640},
		{name: "replace, mode from options", umask: 0o22, existing: 0o666, opt: Options{Mode: 0o600}, wantMode: 0o600},
		{name: "replace keeps mode umask 077", umask: 0o77, existing: 0o664, opt: Options{Keep: true}, wantMode: 0o664},
		{name: "replace keeps group and mode umask 0", umask: 0, existing: 0o640, gid: 4242, opt: Options{Keep: true}, wantMode: 0o640},
		{name: "replace keeps setgid", umask: 0o22, existing: fs.ModeSetgid | 0o640, gid: 4242, opt: Options{Keep: true}, wantMode: fs.ModeSetgid | 0o640},
		{name: "symlinks at some temp names", umask: 0o22, existing: 0o644, opt: Options{Keep: true}, plant: 3, wantMode: 0o644},
		{name: "symlinks at every temp name", umask: 0o22, existing: 0o644, opt: Options{Keep: true}, plant: tries, wantErr: "were all taken"},
		{name: "target is a symlink, keep", umask: 0o22, linkDst: true, opt: Options{Keep: true}, wantErr: "not a regular file"},
		{name: "target is a symlink, replaced", umask: 0o22, linkDst: true, opt: Options{Mode: 0o600}, wantMode: 0o600},
		{name: "directory fsync fails", umask: 0o22, existing: 0o644, opt: Options{Keep: true}, failSync: true, wantMode: 0o644, wantErr: "directory's fsync failed"},
		{name: "before rename refuses", umask: 0o22, existing: 0o644, opt: Options{Keep: true, BeforeRename: func() error { return errors.New("changed meanwhile") }}, wantErr: "changed meanwhile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gid != 0 && !root {
				t.Skip("needs root to chown the file to another group")
			}
			dir := t.TempDir()
			outside := t.TempDir()
			path := filepath.Join(dir, "f")
			tmpName := names(t)
			old := []byte("old contents\n")
			if tc.existing != 0 {
				if err := os.WriteFile(path, old, 0o600); err != nil {
					t.Fatal(err)
				}
				if tc.gid != 0 {
					if err := os.Chown(path, 0, tc.gid); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(path, tc.existing); err != nil {
					t.Fatal(err)
				}
			}
			// Every symlink points at a file of its own outside dir, which
			// must come out untouched.
			victims := map[string]string{}
			link := func(name string) {
				v := filepath.Join(outside, "victim-"+strings.TrimPrefix(name, "."))
				if err := os.WriteFile(v, []byte("victim"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(v, filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
				victims[name] = v
			}
			for i := 0; i < tc.plant; i++ {
				link(tmpName(i))
			}
			link(".f.tmp") // the old, predictable name
			if tc.linkDst {
				link("f")
			}
			if tc.failSync {
				syncDir = func(int) error { return errSync }
				t.Cleanup(func() { syncDir = unix.Fsync })
			}
			oldMask := unix.Umask(tc.umask)
			err := Write(path, []byte("new contents\n"), tc.opt)
			unix.Umask(oldMask)

			if tc.wantErr == "" && err != nil {
				t.Fatalf("Write: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Write error %v, want one saying %q", err, tc.wantErr)
			}
			if tc.failSync && !errors.Is(err, ErrDirSync) {
				t.Errorf("Write error %v does not wrap ErrDirSync", err)
			}
			for name, v := range victims {
				if b, err := os.ReadFile(v); err != nil || string(b) != "victim" {
					t.Errorf("symlink %s: its target now holds %q (%v), want it untouched", name, b, err)
				}
				if name == "f" && err == nil {
					continue // the target symlink was replaced, as documented
				}
				if st, err := os.Lstat(filepath.Join(dir, name)); err != nil || st.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("planted symlink %s was removed or replaced: %v", name, err)
				}
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if _, planted := victims[e.Name()]; !planted && e.Name() != "f" {
					t.Errorf("left behind in the directory: %s", e.Name())
				}
			}
			got, rerr := os.ReadFile(path)
			if tc.wantMode == 0 { // refused: the target is as it was
				if tc.existing != 0 && string(got) != string(old) {
					t.Errorf("refused write changed the file to %q", got)
				}
				return
			}
			if string(got) != "new contents\n" {
				t.Fatalf("file holds %q (%v)", got, rerr)
			}
			st, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Mode().IsRegular() {
				t.Errorf("target is %v, want a regular file", st.Mode())
			}
			mode := st.Mode() & (fs.ModePerm | fs.ModeSetgid)
			if mode != tc.wantMode {
				t.Errorf("mode %v, want %v", mode, tc.wantMode)
			}
			if tc.gid != 0 {
				if g := st.Sys().(*syscall.Stat_t).Gid; g != uint32(tc.gid) {
					t.Errorf("group %d, want %d", g, tc.gid)
				}
			}
		})
	}
}

// A missing directory or a bad name is an error naming the path.
func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "missing", "f"), dir + "/", filepath.Join(dir, "..")} {
		if err := Write(p, []byte("x"), Options{}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("Write(%q): %v, want an error naming it", p, err)
		}
	}
}

// TestHelperWrite is Write run by TestWriteOwnerRefused as another user.
func TestHelperWrite(t *testing.T) {
	path := os.Getenv("ATOMICFILE_TEST_PATH")
	if path == "" {
		t.Skip("helper process for TestWriteOwnerRefused")
	}
	err := Write(path, []byte("new"), Options{Keep: true})
	fmt.Printf("errowner=%v err=%v\n", errors.Is(err, ErrOwner), err)
}

// A user who may not give the new file the old one's owner gets ErrOwner,
// and the file stays as it was (instead of becoming that user's).
func TestWriteOwnerRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a file owned by root in a directory another user can write")
	}
	dir, err := os.MkdirTemp("", "atomicfile")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	// The test binary's own directory is root's alone: run a copy.
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "helper.test")
	if err := os.WriteFile(helper, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, "-test.run=^TestHelperWrite$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_PATH="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "errowner=true") {
		t.Errorf("Write as uid 65534 over root's file: %s, want ErrOwner", out)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("file now holds %q", b)
	}
}
