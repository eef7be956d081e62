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
// first, before anything else of the slice. Here the new answer is created
// under a hidden name beside FILE and exchanged with it in one step
// (renameat2 RENAME_EXCHANGE: FILE names a file all along, never nothing),
// and the previous answer, now under the hidden name, is removed by
// another thread, its pages freed on another core while the slice runs;
// done waits for that.
//
// Only for a previous answer that is a plain file of ours and nothing
// else: a regular file (not a symlink, FIFO or device), not empty, with
// one link, our owner and group, no extended attributes (ACLs, security
// labels), so that a new inode changes nothing but the content; it keeps
// its permissions. The file exchanged out is checked to be that one (its
// device and inode) before it is removed: if the name was swapped for
// something else meanwhile (a hostile user in a shared directory), the
// exchange is undone and nothing of theirs or ours is removed but the new
// empty file. Anything else, or any step failing, returns nil, and the
// caller opens FILE with O_TRUNC as before. freed is closed once the
// previous answer is gone.
func replaceAnswer(path string) (f *os.File, freed chan struct{}) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 ||
		st.Uid != uint32(os.Geteuid()) || st.Gid != uint32(os.Getegid()) || st.Size == 0 {
		return nil, nil
	}
	if n, err := unix.Llistxattr(path, nil); err != nil || n > 0 {
		return nil, nil
	}
	dir, base := filepath.Split(path)
	// A kill in the instant between the exchange and the removal leaves
	// the previous answer under this name (README).
	tmp := filepath.Join(dir, "."+base+".fmslice-"+strconv.Itoa(os.Getpid()))
	perm := uint32(st.Mode & 0o777)
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, nil
	}
	undo := func() (*os.File, chan struct{}) {
		unix.Close(fd)
		unix.Unlink(tmp)
		return nil, nil
	}
	// Its permissions exactly (the umask narrowed them at creation), and
	// its group where the directory gives new files another.
	var nst unix.Stat_t
	if unix.Fchmod(fd, perm) != nil || unix.Fstat(fd, &nst) != nil ||
		nst.Gid != st.Gid && unix.Fchown(fd, -1, int(st.Gid)) != nil {
		return undo()
	}
	if unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE) != nil {
		return undo() // no RENAME_EXCHANGE here (some filesystems), or path gone
	}
	var out unix.Stat_t
	if unix.Lstat(tmp, &out) != nil || out.Dev != st.Dev || out.Ino != st.Ino || out.Nlink != 1 || out.Mode&unix.S_IFMT != unix.S_IFREG {
		// Not the file checked: put it back under its name.
		if unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE) == nil {
			return undo()
		}
		// Cannot: path holds the new file, write it; what was exchanged
		// out stays where it is.
		return os.NewFile(uintptr(fd), path), closedChan()
	}
	freed = make(chan struct{})
	go func() {
		defer close(freed)
		unix.Unlink(tmp)
	}()
	return os.NewFile(uintptr(fd), path), freed
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
