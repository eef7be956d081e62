package chunk

import "encoding/binary"

// A stored frame is a standard zstd frame (RFC 8878) whose blocks are raw
// (block type 0: the bytes as they are), for frames the writer judges not
// worth compressing: random payloads shrink by a few percent at zstd's
// fastest level for most of the writer's CPU, and storing them costs a copy
// and the checksum. Any zstd decoder reads it (zstd -dc, the readers of
// this package), so it is no new format. Layout, little-endian:
//
//	0  4  magic 0xFD2FB528
//	4  1  frame header descriptor 0xA4: content size in 4 bytes (bits 7-6 =
//	      2), single segment (bit 5: no window descriptor, the window is the
//	      content size), content checksum present (bit 2)
//	5  4  content size (the frame's pcap bytes)
//	9  …  blocks of up to 128 KiB (zstd's largest), each a 3-byte header
//	      (bit 0: last block; bits 1-2: type 0, raw; bits 3-23: size) then
//	      the bytes; an empty frame is one empty last block
//	…  4  content checksum: the low 32 bits of XXH64 (seed 0) of the content
const (
	storedHdrSize   = 9
	storedFHD       = 0xA4
	storedBlockMax  = 128 << 10
	storedBlockHdr  = 3
	storedChecksum  = 4
	storedLastBlock = 1
)

// StoredSize is the size of src stored in a zstd frame of raw blocks.
func StoredSize(n int) int {
	blocks := max((n+storedBlockMax-1)/storedBlockMax, 1)
	return storedHdrSize + blocks*storedBlockHdr + n + storedChecksum
}

// AppendStored appends src to dst as a zstd frame of raw blocks (layout
// above) and returns it with the frame's checksum (Sum of src). It
// allocates only when dst lacks StoredSize(len(src)) bytes of room.
func AppendStored(dst, src []byte) ([]byte, uint32) {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, zstdMagic)
	dst = append(dst, storedFHD)
	dst = le.AppendUint32(dst, uint32(len(src)))
	rest := src
	for {
		n := min(len(rest), storedBlockMax)
		h := uint32(n) << 3
		if n == len(rest) {
			h |= storedLastBlock
		}
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
		dst = append(dst, rest[:n]...)
		rest = rest[n:]
		if len(rest) == 0 {
			break
		}
	}
	sum := Sum(src)
	return le.AppendUint32(dst, sum), sum
}
