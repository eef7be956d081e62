//go:build amd64 || arm64

// Package prefetch asks the CPU to start loading memory that will be read
// soon. A load issued early would do the same, but a load that misses
// holds up every instruction after it once the core's window fills; a
// prefetch never does, whether it hits or not, and never faults. Go has no
// prefetch of its own outside the runtime, hence a few lines of assembly
// for amd64 and arm64 (AWS Graviton); elsewhere Lines does nothing.
package prefetch

import "unsafe"

// Lines prefetches every 64-byte line of p[0:n] into the L1 cache for
// reading (amd64 PREFETCHT0, arm64 PRFM PLDL1KEEP).
//
//go:noescape
func Lines(p unsafe.Pointer, n uintptr)
