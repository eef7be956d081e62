package shmring

import (
	"sync/atomic"
	"unsafe"

	"github.com/fmcap/fmcap/internal/prefetch"
)

// This is the only file of the package that uses unsafe (TestUnsafeInOneFile
// holds it to that). Shared fields are reached through these accessors so
// that every cross-process access to them is an atomic one; plain bytes
// (names, record headers, packet data) go through encoding/binary in the
// other files, ordered as MEMORY ORDERING in doc.go says.

// Byte offsets of the header fields (see FORMAT in doc.go).
const (
	offMagic       = 0
	offVersion     = 8
	offHeaderSize  = 12
	offDataSize    = 16
	offMaxCaplen   = 24
	offNConsumers  = 28
	offRingID      = 32
	offFirstSeq    = 40
	offCreated     = 48
	offHeaderCRC   = 56
	headerCRCBytes = 56

	offHead    = 64
	offReserve = 72
	offNextSeq = 80

	offDrops     = 128
	offDropBytes = 136
	offClosed    = 144
	offProdPID   = 148
	offWritten   = 152
	offProdOwner = 160

	offSlots   = 256
	slotSize   = 128
	slotName   = 0
	slotMode   = 32
	slotPID    = 36
	slotOwner  = 40
	slotCursor = 64
	slotCurSeq = 72
	slotOverr  = 80
	slotMissed = 88
	slotMissLo = 96
	slotMissHi = 104
	slotDeliv  = 112

	headerSize = 4096
	recHdrSize = 40

	// record header bytes of the origin (FORMAT): kind at 31, blob length at 36
	recOriginKind = 31
	recOriginLen  = 36
)

// u64 returns the atomic view of the 8-byte field at off. Every offset used
// is a constant multiple of 8 and mmap returns page-aligned memory, so the
// field is naturally aligned as sync/atomic requires.
func u64(mem []byte, off int) *atomic.Uint64 {
	_ = mem[off+7]
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}

// u32 is u64 for 4-byte fields (offsets multiple of 4).
func u32(mem []byte, off int) *atomic.Uint32 {
	_ = mem[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

// prefetchBytes starts loading b's cache lines (internal/prefetch takes an
// address, hence here).
func prefetchBytes(b []byte) {
	prefetch.Lines(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

// Aliases so that the other files name the atomic views without importing
// sync/atomic themselves.
type (
	atomicU64 = atomic.Uint64
	atomicU32 = atomic.Uint32
)
