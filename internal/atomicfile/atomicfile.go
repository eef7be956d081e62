// Package atomicfile replaces a file's contents all at once: a reader (or a
// crash) sees the old file or the new one, never a mix, and a process that
// runs as root cannot be made to write anywhere else by a planted symlink.
//
// Write does, in the target's directory (opened once; every later step is
// relative to that descriptor, so a directory renamed meanwhile cannot
// redirect it):
//
//  1. creates a temporary file ".NAME.tmp-<16 random hex digits>" with
//     O_CREAT|O_EXCL|O_NOFOLLOW: an existing file or symlink of that name
//     is never opened, let alone followed, and a predictable name cannot be
//     planted in advance (on a clash Write draws another name, a few times);
//  2. writes the data, gives the file its owner and group (Options.Keep)
//     and its mode with fchmod, so the mode does not depend on the umask;
//  3. fsyncs it, calls Options.BeforeRename (a last check of the caller),
//     renames it over the target and fsyncs the directory, so that the
//     rename itself survives a crash.
//
// Every error is returned, wrapped with the step and the path; a temporary
// file left by a failed step is removed. A symlink at the target path is
// replaced by the new file, not followed: resolve it first
// (filepath.EvalSymlinks) to write through it.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Options say how the new file is made.
type Options struct {
	// Mode is the permission bits of a file that does not exist yet (and
	// of a replaced one unless Keep is set). Zero means 0600.
	Mode fs.FileMode
	// Keep gives the new file the owner, group and mode (permission,
	// setgid and sticky bits) of the file it replaces. Changing the owner
	// needs root (CAP_CHOWN); changing the group needs root or membership
	// of the group: when that fails, Write fails rather than silently
	// leave the file with the writer's group.
	Keep bool
	// BeforeRename, when set, is called once the temporary file is on disk
	// and just before the rename; an error aborts the write (the target is
	// untouched). It lets a caller check, as late as possible, that the
	// target has not changed since it read it.
	BeforeRename func() error
}

// ErrOwner is wrapped by the error of a Write (with Keep) that may not give
// the new file the replaced one's owner and group: a caller can say who
// should own the file.
var ErrOwner = errors.New("may not keep the owner and group")

// ErrDirSync is wrapped by the error of a Write whose file was replaced
// but whose directory could not be fsynced: the new contents are in place
// (readers see them) and may not survive a crash. A caller must not take
// the write for not done.
var ErrDirSync = errors.New("replaced, but the directory's fsync failed")

// tries bounds the draws of a temporary name: 64 random bits clash only
// when someone plants names on purpose, and then Write gives up loudly.
const tries = 8

// Tests replace these to plant names and to fail the directory sync.
var (
	tempSuffix = func() string {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand.Read panics instead)
		return hex.EncodeToString(b[:])
	}
	syncDir = unix.Fsync
)

// Write replaces path's contents with data; see the package comment.
func Write(path string, data []byte, opt Options) (err error) {
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("write %s: not a file name", path)
	}
	if dir == "" {
		dir = "."
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write %s: open directory %s: %w", path, dir, err)
	}
	defer unix.Close(dfd)

	mode := uint32(opt.Mode.Perm())
	if mode == 0 {
		mode = 0o600
	}
	uid, gid := -1, -1
	if opt.Keep {
		var st unix.Stat_t
		switch err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); {
		case errors.Is(err, unix.ENOENT):
			// Nothing to keep: a new file gets opt.Mode.
		case err != nil:
			return fmt.Errorf("write %s: stat: %w", path, err)
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			return fmt.Errorf("write %s: not a regular file (a symlink or a device?), so its owner and mode cannot be kept: replace it by hand", path)
		default:
			mode = st.Mode & 0o7777
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}

	var tmp string
	fd := -1
	for i := 0; i < tries && fd < 0; i++ {
		tmp = "." + base + ".tmp-" + tempSuffix()
		fd, err = unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("write %s: create temporary %s: %w", path, filepath.Join(dir, tmp), err)
		}
	}
	if fd < 0 {
		return fmt.Errorf("write %s: %d temporary names in %s were all taken (files planted there?): %w", path, tries, dir, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	renamed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !renamed {
			unix.Unlinkat(dfd, tmp, 0) // best effort: the error that matters is already in err
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// chown before chmod: changing the owner clears the setgid bit.
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("write %s: %w (uid %d, gid %d): %w", path, ErrOwner, uid, gid, err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("write %s: chmod %#o: %w", path, mode, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if opt.BeforeRename != nil {
		if err := opt.BeforeRename(); err != nil {
			return err
		}
	}
	if err := unix.Renameat(dfd, tmp, dfd, base); err != nil {
		return fmt.Errorf("write %s: rename: %w", path, err)
	}
	renamed = true
	if err := syncDir(dfd); err != nil {
		return fmt.Errorf("write %s: %w: directory %s (the change may not survive a crash): %w", path, ErrDirSync, dir, err)
	}
	return nil
}
