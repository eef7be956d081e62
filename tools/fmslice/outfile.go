package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/fmcap/fmcap/internal/fsmode"
	"golang.org/x/sys/unix"
)

// sliceOutput is where a slice's pcap goes: -w FILE, or "-",
// stdout unless it is a terminal. done closes it.
func sliceOutput(path string) (w io.Writer, done func() error, err error) {
	if path != "-" {
		if f, freed := replaceAnswer(path); f != nil {
			return f, func() error {
				err := f.Close()
				<-freed
				return err
			}, nil
		}
		// O_TRUNC: the kernel frees the previous answer's pages here,
		// before the slice starts (replaceAnswer avoids that wait).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fsmode.File)
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS); err == nil {
		return nil, nil, fmt.Errorf("refusing to write pcap to a terminal: use -w FILE, or pipe into tcpdump -r -")
	}
	return os.Stdout, func() error { return nil }, nil
}

// replaceAnswer writes -w FILE over a previous answer without waiting for
// the kernel to free the previous answer's pages: that took as long as
// writing the new answer (bench/slice.sh: cp over the previous answer
// takes twice as long as cp to a new file), and with O_TRUNC it comes
// first, before anything else of the slice. Here the previous file is
// renamed aside (a hidden name beside it), FILE is created new, and the
// file aside is removed by another thread, its pages freed on another core
// while the slice runs; done waits for that. What FILE holds at any time is
// what O_TRUNC would leave: from the start, the new answer as far as it is
// written.
//
// Only for a previous answer that is a plain file of ours and nothing
// else: a regular file (not a symlink, FIFO or device), with one link, our
// owner and group (what a new file gets), so that replacing the inode
// changes nothing but the content; it keeps its permissions. Anything else,
// or any step failing before FILE is created anew, returns nil and the
// caller opens FILE with O_TRUNC as before. freed is closed once the file
// aside is gone.
func replaceAnswer(path string) (f *os.File, freed chan struct{}) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 ||
		st.Uid != uint32(os.Geteuid()) || st.Gid != uint32(os.Getegid()) || st.Size == 0 {
		return nil, nil
	}
	// Extended attributes (ACLs, security labels) would not follow the
	// content to a new inode.
	if n, err := unix.Llistxattr(path, nil); err != nil || n > 0 {
		return nil, nil
	}
	dir, base := filepath.Split(path)
	aside := filepath.Join(dir, "."+base+".fmslice-old-"+strconv.Itoa(os.Getpid()))
	// RENAME_NOREPLACE: a file of that name (a run killed between the two
	// steps) is not overwritten; O_TRUNC then.
	if err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, aside, unix.RENAME_NOREPLACE); err != nil {
		return nil, nil
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		// Someone made FILE meanwhile: put the previous answer back, or,
		// if the name is taken, remove it (it was to be replaced), and let
		// O_TRUNC decide.
		if unix.Renameat2(unix.AT_FDCWD, aside, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE) != nil {
			os.Remove(aside)
		}
		return nil, nil
	}
	// The previous answer's permissions, whatever the umask (created with
	// none), and its group where the directory gives new files another.
	unix.Fchmod(fd, st.Mode&0o777)
	var nst unix.Stat_t
	if unix.Fstat(fd, &nst) == nil && nst.Gid != st.Gid {
		unix.Fchown(fd, -1, int(st.Gid))
	}
	freed = make(chan struct{})
	go func() {
		defer close(freed)
		os.Remove(aside)
	}()
	return os.NewFile(uintptr(fd), path), freed
}
