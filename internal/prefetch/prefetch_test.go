package prefetch

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

var sink byte

// TestLinesKeepsBuffersOnTheStack: Lines is assembly marked //go:noescape.
// Without the mark the compiler must assume the pointer escapes, so every
// caller's buffer would move to the heap: one allocation per call, on the
// ring consumer's per-record path (shmring pins 0).
func TestLinesKeepsBuffersOnTheStack(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		var buf [512]byte
		Lines(unsafe.Pointer(&buf[3]), uintptr(len(buf)-3))
		sink = buf[7]
	})
	if n != 0 {
		t.Fatalf("got %v allocations per call, want 0", n)
	}
}

// TestLinesEdges: the loop ends for every alignment and length, none and nil
// included, up to the last byte of a mapping whose next page is
// inaccessible. A prefetch never faults, so the guard page catches only an
// implementation that loads; a wrong bound or step that never meets it
// runs away and the test times out.
func TestLinesEdges(t *testing.T) {
	pg := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*pg, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mprotect(mem[pg:], unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	Lines(nil, 0)
	Lines(unsafe.Pointer(&mem[0]), 0)
	for off := pg - 200; off < pg; off++ {
		for _, n := range []int{1, 7, 63, 64, 65, 129} {
			if off+n <= pg {
				Lines(unsafe.Pointer(&mem[off]), uintptr(n))
			}
		}
		Lines(unsafe.Pointer(&mem[off]), uintptr(pg-off))
	}
}
