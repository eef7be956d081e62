// Package prefetch asks the CPU to start loading memory that will be read
// soon. A load issued early would do the same, but a load that misses
// holds up every instruction after it once the core's window fills; a
// prefetch never does, whether it hits or not. Go has no prefetch of its
// own outside the runtime, hence a few lines of assembly.
package prefetch

import "unsafe"

// Lines prefetches (PREFETCHT0) every 64-byte line of p[0:n].
//
//go:noescape
func Lines(p unsafe.Pointer, n uintptr)
