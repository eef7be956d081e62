//go:build !amd64 && !arm64

// Package prefetch: see prefetch_asm.go.
package prefetch

import "unsafe"

// Lines does nothing where fmcap has no assembly for it.
func Lines(p unsafe.Pointer, n uintptr) {}
