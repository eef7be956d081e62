package fwd

// The only file of package fwd that uses unsafe, besides dpdk.go's cgo
// boundary (which says why it keeps its own): a view of a word of the
// kernel's packet ring, and recvmmsg(2), which x/sys/unix lacks. Neither
// allocates; both run on the hot path.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// statusAt is the status word at off in a TPACKET ring frame: the kernel
// reads and writes it concurrently, so callers load and store it
// atomically. off is a frame's start (its header's first field), so the
// word is aligned in the page-aligned mmap.
func statusAt(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// recvmmsg receives up to len(msgs) datagrams from fd (msgs non-empty):
// the count, or the errno (0 on success).
func recvmmsg(fd int, msgs []mmsghdr, flags int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags), 0, 0)
	return int(n), e
}
