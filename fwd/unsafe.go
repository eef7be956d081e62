package fwd

// The only file of package fwd that uses unsafe, besides dpdk.go's cgo
// boundary (which says why it keeps its own): recvmmsg(2) and sendmmsg(2),
// which x/sys/unix lacks. Neither allocates; both run on the hot path.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvmmsg receives up to len(msgs) datagrams from fd (msgs non-empty):
// the count, or the errno (0 on success).
func recvmmsg(fd int, msgs []mmsghdr, flags int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags), 0, 0)
	return int(n), e
}

// sendmmsg sends up to len(msgs) datagrams on fd (msgs non-empty): how
// many the kernel took, or the errno of the first (0 on success).
func sendmmsg(fd int, msgs []mmsghdr, flags int) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags), 0, 0)
	return int(n), e
}
