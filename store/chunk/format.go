// Package chunk owns the store's on-disk format: chunk files of pcap data,
// their frame tables, how they are named, written, published, repaired after
// a crash and read back. The writer writes it; fmslice and the indexer read it
// through this package only.
//
// # Store directory
//
//	chunk-F-L-A-B.pcap.zst   a finished compressed chunk (self-contained)
//	chunk-F-L-A-B.pcap       a finished uncompressed chunk (--compress none) ...
//	chunk-F.ftab             ... its frame table ...
//	chunk-F.fmpm             ... and its metadata sidecar (below)
//	.open-F.pcap.zst         the chunk being written (or .open-F.pcap) ...
//	.open-F.ftab             ... and its live frame table (zstd mode; none mode
//	                         writes chunk-F.ftab and chunk-F.fmpm from the
//	                         start, so that publishing is one rename)
//
// F and L are the first and last seq (20 digits), A and B the minimum and
// maximum capture time in Unix ns (19 digits), all zero-padded so that names
// sort by seq. A reader picks chunks by name alone, without opening them.
//
// # Chunk data
//
// Decompressed, a chunk is one standard pcap file: the 24-byte global header
// (magic a1b23c4d little-endian, i.e. nanosecond timestamps; version 2.4;
// snaplen 262144; link type 1, Ethernet), then one 16-byte record header and
// the packet bytes per packet, in capture (seq) order. The stream is cut into
// frames at packet boundaries; frame 0 starts with the global header.
//
// Compressed (.pcap.zst), each frame is an independent zstd frame, and the
// file follows the zstd seekable format (facebook/zstd contrib/seekable_format).
// A frame the writer judged not worth compressing is a zstd frame of raw
// blocks (stored.go): still a standard zstd frame, read as any other.
//
//	frame 0 … frame N-1, each: [skippable frame 0x184D2A5C: the frame's
//	    per-packet metadata (below)] then the zstd frame of its pcap bytes
//	skippable frame 0x184D2A5D: the fmcap frame table (below), same bytes as a .ftab file
//	skippable frame 0x184D2A5E: the seek table
//	    per frame: compressed size u32, decompressed size u32, checksum u32
//	    footer: frame count u32, descriptor u8 (0x80: checksums present), magic 0x8F92EAB1 u32
//
// zstd -dc skips skippable frames, so `zstd -dc CHUNK | tcpdump -r -` reads a
// chunk with no other step. A frame's compressed size, in both tables,
// counts its metadata frame and its zstd frame together: decompressing
// that byte range (which a seekable-format reader does) gives exactly the
// frame's pcap bytes, the metadata being skipped, and its checksum is the
// zstd frame's. Chunks written before metadata have none: their packets'
// origin is unknown. The checksum of a frame is the low 32 bits of the
// XXH64 (seed 0) of its decompressed bytes, as the seekable format defines.
// Uncompressed (.pcap), frames are just byte ranges of the pcap file, with
// compressed size = decompressed size, and the file is a plain pcap file
// (tcpdump -r reads it). Their metadata frames are in the sidecar,
// chunk-F.fmpm:
//
//	frame 0's metadata frame, frame 1's, … frame N-1's, concatenated with
//	    nothing between: each the skippable frame 0x184D2A5C (magic u32,
//	    payload length u32, the payload below), byte for byte what a
//	    compressed chunk has ahead of the frame's zstd frame
//
// Frame i's metadata frame starts at the sum of the metadata sizes (entry
// bytes 56..59) of frames 0..i-1 and is as long as its own; a frame of
// size 0 has none there. The writer writes a batch's metadata frames to
// the sidecar after the frames' pcap bytes and before their entries (the
// entry commits the frame), so the sidecar holds every entry's. A sidecar
// shorter than its entries say (cut by a crash, or a partial copy) reads
// the frames it lacks with their origin unknown; crash repair instead cuts
// the chunk, its table and its sidecar back at the first frame whose
// metadata is not whole, as it does a compressed chunk. An uncompressed
// chunk written before sidecars has none, and zeros at entry bytes 56..59:
// its packets' origin is unknown.
//
// # Frame table (.ftab, and the skippable frame payload)
//
// Little-endian. A 32-byte header then one 64-byte entry per frame, in file
// order. Each entry carries its own CRC, so a table cut short by a crash is
// read up to its last whole entry.
//
//	header
//	  0  4  magic "FMFT"
//	  4  2  version (1)
//	  6  2  flags: bit 0 set = frames are zstd-compressed
//	  8  8  ring id of the ring the packets came from
//	 16  4  entry size (64)
//	 20  8  reserved, zero
//	 28  4  CRC-32C of bytes 0..27
//	entry
//	  0  8  offset of the frame in the chunk file
//	  8  4  compressed size (bytes in the file)
//	 12  4  decompressed size (pcap bytes)
//	 16  8  first seq
//	 24  8  last seq (the frame holds every seq from first to last)
//	 32  8  minimum capture time, Unix ns
//	 40  8  maximum capture time, Unix ns (times need not be monotonic)
//	 48  4  packet count (= last - first + 1)
//	 52  4  checksum of the decompressed bytes (as in the seek table)
//	 56  4  size of the frame's metadata frame (its 8-byte skippable
//	        header included): compressed, at the frame's start (and
//	        counted in its compressed size); uncompressed, in the sidecar
//	        (above; not counted); 0: none (chunks from before metadata,
//	        where these bytes were reserved zero)
//	 60  4  CRC-32C of bytes 0..59
//
// # Metadata frame (skippable frame 0x184D2A5C; compressed chunks, sidecars)
//
// What pcap cannot hold about each packet of the frame it precedes: the
// port, direction and rule of the ring record (shmring FORMAT) and the
// tunnel it came through (internal/origin). Little-endian; the payload,
// after the skippable frame's magic and length:
//
//	 0  4  magic "FMPM"
//	 4  2  version (1)
//	 6  2  origin count O
//	 8  4  run count R
//	12  4  packet count P: the frame's packet count, and the sum of the runs
//	16  …  O origins, each: kind u8, length u8, the blob (internal/origin:
//	       1 GWLB, 20 bytes; 2 mirror, 7 or 19 bytes)
//	 …  …  R runs of consecutive packets with the same metadata, 12 bytes each:
//	         0  2  packets in the run (1..65535)
//	         2  2  port (fwd's port index)
//	         4  1  direction (shmring.Dir: 0 unknown, 1 ingress, 2 egress, 3 inline)
//	         5  1  reserved, zero
//	         6  2  origin: 0 none, i the i-th origin above (from 1)
//	         8  4  rule id
//	 …  4  CRC-32C of every payload byte before it
//
// A reader that finds metadata it cannot parse, or whose packet count is
// not the frame's, reads the packets all the same, their origin unknown,
// and says so. Crash repair keeps a frame only when its metadata frame, zstd
// frame and entry are all whole: a chunk cut inside a metadata frame loses
// that frame, as one cut inside a zstd frame does.
package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// SeqGroup is where the writer cuts frames: before a packet whose seq is a
// multiple of SeqGroup, the boundary of the index's seq groups
// (store/segment), so that a group the index says may match is in one
// frame. At each boundary the writer ends the frame when the coming group,
// judged by the size of the last one, would not fit the frame size; a
// frame may so hold one group larger than the frame size. Only a group
// larger than the writer's cap (8 frame sizes, at most 1 MiB: MaxFrame) is
// cut at a packet, as are frames flushed by time. This is the writer's
// choice, not the format's: a reader takes frames cut anywhere between
// packets, and old chunks read as before.
const SeqGroup = 64

const (
	ftabMagic     = "FMFT"
	ftabVersion   = 1
	ftabHdrSize   = 32
	EntrySize     = 64
	flagZstd      = 1
	pcapHdrSize   = 24
	pcapRecSize   = 16
	pcapMagicNano = 0xa1b23c4d
	// Snaplen is what chunk pcap headers declare.
	Snaplen      = 262144
	linkEthernet = 1

	skipFtab      = 0x184D2A5D
	skipSeekTable = 0x184D2A5E
	seekMagic     = 0x8F92EAB1
	seekFooter    = 9
	seekEntry     = 12
	zstdMagic     = 0xFD2FB528
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks damage found in a chunk or frame table.
var ErrCorrupt = errors.New("corrupt chunk")

// Frame describes one frame of a chunk.
type Frame struct {
	Off      uint64
	CSize    uint32
	DSize    uint32
	FirstSeq uint64
	LastSeq  uint64
	MinTS    int64
	MaxTS    int64
	Count    uint32
	Sum      uint32
	// Meta is the bytes of the frame's metadata frame: at Off and counted
	// in CSize (compressed), in the sidecar (uncompressed); 0: none.
	Meta uint32
}

// decodeEntry is a frame table entry's fields (FORMAT); its CRC (bytes
// 60-63) is the caller's to check.
func decodeEntry(e []byte) Frame {
	le := binary.LittleEndian
	return Frame{
		Off: le.Uint64(e[0:]), CSize: le.Uint32(e[8:]), DSize: le.Uint32(e[12:]),
		FirstSeq: le.Uint64(e[16:]), LastSeq: le.Uint64(e[24:]),
		MinTS: int64(le.Uint64(e[32:])), MaxTS: int64(le.Uint64(e[40:])),
		Count: le.Uint32(e[48:]), Sum: le.Uint32(e[52:]), Meta: le.Uint32(e[56:]),
	}
}

// whole says whether an entry's fields agree with each other: what can be
// checked of it without another entry (in a compressed chunk, the
// metadata frame is inside CSize).
func (f *Frame) whole(zstd bool) bool {
	return f.LastSeq >= f.FirstSeq && uint64(f.Count) == f.LastSeq-f.FirstSeq+1 && f.MinTS <= f.MaxTS &&
		f.CSize != 0 && f.DSize != 0 && !(zstd && f.Meta >= f.CSize) && f.Meta <= maxMeta
}

// Follows says whether f is the frame right after prev: its bytes and its
// seqs the next ones (what the frame table's parser checks across entries;
// a lazy reader, which checks entries one at a time, leaves it to a caller
// that walks them).
func (f *Frame) Follows(prev *Frame) bool {
	return f.Off == prev.Off+uint64(prev.CSize) && f.FirstSeq == prev.LastSeq+1
}

// Overlaps reports whether the frame may hold packets in [from, to).
func (f *Frame) Overlaps(from, to int64) bool { return f.MaxTS >= from && f.MinTS < to }

func appendFtabHeader(b []byte, zstd bool, ringID uint64) []byte {
	var h [ftabHdrSize]byte
	copy(h[:], ftabMagic)
	le := binary.LittleEndian
	le.PutUint16(h[4:], ftabVersion)
	if zstd {
		le.PutUint16(h[6:], flagZstd)
	}
	le.PutUint64(h[8:], ringID)
	le.PutUint32(h[16:], EntrySize)
	le.PutUint32(h[28:], crc32.Checksum(h[:28], crcTable))
	return append(b, h[:]...)
}

func appendEntry(b []byte, f *Frame) []byte {
	var e [EntrySize]byte
	le := binary.LittleEndian
	le.PutUint64(e[0:], f.Off)
	le.PutUint32(e[8:], f.CSize)
	le.PutUint32(e[12:], f.DSize)
	le.PutUint64(e[16:], f.FirstSeq)
	le.PutUint64(e[24:], f.LastSeq)
	le.PutUint64(e[32:], uint64(f.MinTS))
	le.PutUint64(e[40:], uint64(f.MaxTS))
	le.PutUint32(e[48:], f.Count)
	le.PutUint32(e[52:], f.Sum)
	le.PutUint32(e[56:], f.Meta)
	le.PutUint32(e[60:], crc32.Checksum(e[:60], crcTable))
	return append(b, e[:]...)
}

// Table is a decoded frame table.
type Table struct {
	Zstd   bool
	RingID uint64
	Frames []Frame
	// Cut is set when the table ended in a partial or damaged entry; Frames
	// holds the whole entries before it.
	Cut bool
}

// ParseTable decodes a frame table. Entries must be contiguous in the file
// (each starts where the previous ended, the first at 0) and cover
// consecutive seqs. A damaged header is an error; a damaged or partial entry
// ends the table (Cut), which is how a table cut short by a crash reads.
func ParseTable(b []byte) (*Table, error) {
	le := binary.LittleEndian
	if len(b) < ftabHdrSize || string(b[:4]) != ftabMagic {
		return nil, fmt.Errorf("%w: frame table: bad magic", ErrCorrupt)
	}
	if le.Uint32(b[28:]) != crc32.Checksum(b[:28], crcTable) {
		return nil, fmt.Errorf("%w: frame table header checksum", ErrCorrupt)
	}
	if v := le.Uint16(b[4:]); v != ftabVersion {
		return nil, fmt.Errorf("%w: frame table version %d (this build reads %d)", ErrCorrupt, v, ftabVersion)
	}
	if es := le.Uint32(b[16:]); es != EntrySize {
		return nil, fmt.Errorf("%w: frame table entry size %d", ErrCorrupt, es)
	}
	t := &Table{Zstd: le.Uint16(b[6:])&flagZstd != 0, RingID: le.Uint64(b[8:])}
	rest := b[ftabHdrSize:]
	var next uint64
	for len(rest) >= EntrySize {
		e := rest[:EntrySize]
		rest = rest[EntrySize:]
		if le.Uint32(e[60:]) != crc32.Checksum(e[:60], crcTable) {
			t.Cut = true
			return t, nil
		}
		f := decodeEntry(e)
		if f.Off != next || !f.whole(t.Zstd) {
			return nil, fmt.Errorf("%w: frame table entry %d inconsistent", ErrCorrupt, len(t.Frames))
		}
		if n := len(t.Frames); n > 0 && t.Frames[n-1].LastSeq+1 != f.FirstSeq {
			return nil, fmt.Errorf("%w: frame table entry %d starts at seq %d after %d", ErrCorrupt, n, f.FirstSeq, t.Frames[n-1].LastSeq)
		}
		next = f.Off + uint64(f.CSize)
		t.Frames = append(t.Frames, f)
	}
	if len(rest) != 0 {
		t.Cut = true
	}
	return t, nil
}

// MaxRecord is the largest pcap record a chunk holds (header and data).
const MaxRecord = pcapRecSize + Snaplen

// PcapHeader is the global header every chunk's data starts with.
func PcapHeader() []byte {
	var h [pcapHdrSize]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], pcapMagicNano)
	le.PutUint16(h[4:], 2)
	le.PutUint16(h[6:], 4)
	le.PutUint32(h[16:], Snaplen)
	le.PutUint32(h[20:], linkEthernet)
	return h[:]
}

// AppendPacket appends one pcap record (nanosecond timestamp) to b. The
// time is clamped (ClampTS) and the clamped value returned, so that frame
// tables agree with the bytes.
func AppendPacket(b []byte, ts int64, wireLen uint32, data []byte) ([]byte, int64) {
	ts = ClampTS(ts)
	var h [pcapRecSize]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], uint32(ts/1e9))
	le.PutUint32(h[4:], uint32(ts%1e9))
	le.PutUint32(h[8:], uint32(len(data)))
	if wireLen < uint32(len(data)) {
		wireLen = uint32(len(data))
	}
	le.PutUint32(h[12:], wireLen)
	b = append(b, h[:]...)
	return append(b, data...), ts
}

// ClampTS is the capture time (Unix ns) a packet is stored, indexed and
// queried at: pcap's seconds are a u32, so a time before 1970 becomes
// 1970-01-01T00:00:00Z and one after 2106-02-07T06:28:15.999999999Z
// becomes that instant (MaxTS). It is the one clamp of fmcap: the writer
// (through AppendPacket), the live indexer and indexer --rebuild all call
// it, so that a packet's time in the index is the time in its chunk, and
// an indexed query finds what a scan finds.
func ClampTS(ts int64) int64 {
	return min(max(ts, 0), MaxTS)
}

// MaxTS is the latest time pcap can hold: 2106-02-07T06:28:15.999999999Z.
const MaxTS = maxPcapTS

const maxPcapTS = int64(1<<32-1)*1e9 + 999_999_999

// Packet is one record of a frame's pcap bytes.
type Packet struct {
	TS      int64
	WireLen uint32
	Data    []byte
	Off     int // where Data starts in the bytes handed to Packets
}

// Records checks the pcap records of a frame's decompressed bytes as
// Packets does, without a call per packet, and says how many there are and
// where the first starts (after frame 0's global header): a time slice
// writes a frame whose packets are all in its range as the bytes stored,
// once it knows they are whole records.
func Records(b []byte, first bool) (n, start int, err error) {
	if start, err = firstRecord(b, first); err != nil {
		return 0, 0, err
	}
	for at := start; at < len(b); n++ {
		incl, ok := recordLen(b, at)
		if !ok {
			return n, start, badRecord(b[at:])
		}
		at += pcapRecSize + incl
	}
	return n, start, nil
}

// Packets walks the pcap records in a frame's decompressed bytes; first says
// whether this is frame 0 (which starts with the global header). fn returning
// false stops the walk. A record that does not fit is ErrCorrupt.
func Packets(b []byte, first bool, fn func(Packet) bool) error {
	at, err := firstRecord(b, first)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	for at < len(b) {
		incl, ok := recordLen(b, at)
		if !ok {
			return badRecord(b[at:])
		}
		r := b[at : at+pcapRecSize]
		d := at + pcapRecSize
		at = d + incl
		if !fn(Packet{TS: int64(le.Uint32(r))*1e9 + int64(le.Uint32(r[4:])), WireLen: le.Uint32(r[12:]), Data: b[d:at:at], Off: d}) {
			return nil
		}
	}
	return nil
}

// firstRecord is where the records of a frame's bytes b start: after the
// global header in frame 0 (first), which it checks.
func firstRecord(b []byte, first bool) (int, error) {
	if !first {
		return 0, nil
	}
	if len(b) < pcapHdrSize || binary.LittleEndian.Uint32(b) != pcapMagicNano {
		return 0, fmt.Errorf("%w: frame 0 does not start with a nanosecond pcap header", ErrCorrupt)
	}
	return pcapHdrSize, nil
}

// recordLen checks the record at b[at:]: its header and captured bytes
// fit in b, its time and lengths are valid; it returns the captured
// length. The check Packets and Records share, small enough to inline into
// their loops (badRecord says why a record was refused).
func recordLen(b []byte, at int) (int, bool) {
	rest := len(b) - at - pcapRecSize
	if rest < 0 {
		return 0, false
	}
	r := b[at : at+pcapRecSize]
	nsec, incl, orig := binary.LittleEndian.Uint32(r[4:]), binary.LittleEndian.Uint32(r[8:]), binary.LittleEndian.Uint32(r[12:])
	if nsec >= 1e9 || incl > Snaplen || uint64(incl) > uint64(rest) || orig < incl {
		return 0, false
	}
	return int(incl), true
}

// badRecord is the error of a record at the start of b that recordLen
// refused.
func badRecord(b []byte) error {
	if len(b) < pcapRecSize {
		return fmt.Errorf("%w: %d stray bytes after the last packet", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	return fmt.Errorf("%w: bad packet record (len %d of %d left, nsec %d)", ErrCorrupt, le.Uint32(b[8:]), len(b)-pcapRecSize, le.Uint32(b[4:]))
}
