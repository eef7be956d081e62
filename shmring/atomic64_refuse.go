//go:build (arm && !arm.7) || mips || mipsle

package shmring

// The ring's words are shared between processes, so every atomic operation
// on them must be one instruction sequence the hardware makes atomic. On
// these architectures sync/atomic's 64-bit operations are not: unless the
// build targets ARMv7 (GOARM=7) the Go runtime may, and on 32-bit MIPS
// always does, emulate them under a spinlock of its own
// (internal/runtime/atomic: goCas64, goLoad64, goStore64). That lock lives
// in one process's memory: a producer and a consumer in two processes would
// each take their own and update head, reserve and the cursors without
// excluding each other. Rather than a ring that tears its indices, no ring:
// this undefined name stops the build with the reason in it.
var _ = shmring_needs_lock_free_64bit_atomics_shared_across_processes_build_with_GOARM_7_or_a_64bit_GOARCH
