package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/edsrzf/mmap-go"
	"github.com/klauspost/compress/zstd"

	"github.com/fmcap/fmcap/internal/origin"
)

// Info is what a chunk's name says about it.
type Info struct {
	Name     string
	FirstSeq uint64
	LastSeq  uint64 // open chunks: unknown (MaxUint64)
	MinTS    int64  // open chunks: unknown (MinInt64)
	MaxTS    int64  // open chunks: unknown (MaxInt64)
	Zstd     bool
	Open     bool // still being written
}

// Overlaps reports whether the chunk may hold packets in [from, to).
func (i *Info) Overlaps(from, to int64) bool { return i.MaxTS >= from && i.MinTS < to }

// ParseName decodes a chunk file name; ok is false for names that are not chunks.
func ParseName(name string) (Info, bool) {
	in := Info{Name: name}
	switch {
	case strings.HasSuffix(name, extZstd):
		in.Zstd = true
		name = strings.TrimSuffix(name, extZstd)
	case strings.HasSuffix(name, extPcap):
		name = strings.TrimSuffix(name, extPcap)
	default:
		return in, false
	}
	if strings.HasPrefix(name, openPfx) {
		v, err := strconv.ParseUint(name[len(openPfx):], 10, 64)
		if err != nil {
			return in, false
		}
		in.Open, in.FirstSeq, in.LastSeq, in.MinTS, in.MaxTS = true, v, math.MaxUint64, math.MinInt64, math.MaxInt64
		return in, true
	}
	p := strings.Split(name, "-")
	if len(p) != 5 || p[0] != "chunk" {
		return in, false
	}
	var err [4]error
	in.FirstSeq, err[0] = strconv.ParseUint(p[1], 10, 64)
	in.LastSeq, err[1] = strconv.ParseUint(p[2], 10, 64)
	in.MinTS, err[2] = strconv.ParseInt(p[3], 10, 64)
	in.MaxTS, err[3] = strconv.ParseInt(p[4], 10, 64)
	if errors.Join(err[:]...) != nil || in.LastSeq < in.FirstSeq || in.MaxTS < in.MinTS {
		return in, false
	}
	return in, true
}

// List returns the chunks of a store, finished and open, in seq order.
func List(dir string) ([]Info, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list store: %w", err)
	}
	var out []Info
	for _, e := range ents {
		if in, ok := ParseName(e.Name()); ok && e.Type().IsRegular() {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].FirstSeq < out[b].FirstSeq })
	return out, nil
}

// Reader reads the frames of one chunk.
type Reader struct {
	Info  Info
	Table *Table
	// Note says how the frame table was obtained when it was not the normal
	// way (a damaged table rebuilt from the seek table or by scanning).
	Note string
	// Lost is set with Note when the rebuilt table may miss frames (a scan
	// of the frames stopped at damage before the tables): packets of the
	// chunk may be missing. Otherwise every frame is known, and a frame
	// that reads and checks out gives all its packets.
	Lost bool
	ra   io.ReaderAt
	size int64
	f    *os.File
	dec  *zstd.Decoder
	buf  []byte
	m    mmap.MMap  // OpenLazy: the mapped file, for its tables
	lazy *lazyTable // OpenLazy: entries checked when read (Frame)
	// side and sideAt: an uncompressed chunk's metadata sidecar (SetMeta)
	// and where each frame's metadata starts in it.
	side   []byte
	sideAt []uint64
}

// OpenReader opens a chunk of dir. For an open chunk it reads the frames
// whose bytes and entries are both written; a chunk that was published
// meanwhile is ErrNotExist, and the caller lists the store again.
func OpenReader(dir string, in Info, dec *zstd.Decoder) (*Reader, error) {
	f, size, err := openSized(dir, in.Name)
	if err != nil {
		return nil, err
	}
	var side []byte
	if in.Open || !in.Zstd {
		side, err = os.ReadFile(filepath.Join(dir, ftabName(in.FirstSeq, in.Zstd)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			f.Close()
			return nil, fmt.Errorf("chunk %q: frame table: %w", in.Name, err)
		}
		if err != nil && in.Open {
			f.Close()
			return nil, err // published meanwhile
		}
	}
	var meta []byte
	if !in.Zstd {
		// Read after the frame table, so that it holds the metadata of
		// every entry read (the writer writes it before the entries).
		meta, err = os.ReadFile(filepath.Join(dir, metaName(in.FirstSeq)))
		if err != nil && !errors.Is(err, os.ErrNotExist) { // none: a chunk from before the sidecar
			f.Close()
			return nil, fmt.Errorf("chunk %q: metadata sidecar: %w", in.Name, err)
		}
	}
	r, err := NewReader(in, f, size, side, dec)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("chunk %q: %w", in.Name, err)
	}
	r.SetMeta(meta)
	r.f = f
	return r, nil
}

// SetMeta gives an uncompressed chunk's reader the chunk's metadata
// sidecar (FORMAT, "Store directory"), nil when there is none: frame i's
// metadata is at the sum of the Meta of the frames before it. OpenReader
// does this; a reader of another backend (store.OpenChunk) calls it.
func (r *Reader) SetMeta(b []byte) {
	if r.Table == nil || r.Table.Zstd {
		return
	}
	r.side, r.sideAt = b, make([]uint64, len(r.Table.Frames))
	var at uint64
	for i := range r.Table.Frames {
		r.sideAt[i] = at
		at += uint64(r.Table.Frames[i].Meta)
	}
}

// sideMeta is frame i's metadata payload from the sidecar: nil when the
// frame has none or the sidecar does not hold it all (cut short by a crash
// or a copy), the packets' origin then being unknown. Damaged metadata is
// returned as it is: Meta.Parse refuses it, and the caller says so.
func (r *Reader) sideMeta(i int, f *Frame) []byte {
	if f.Meta <= 8 || i >= len(r.sideAt) || r.sideAt[i]+uint64(f.Meta) > uint64(len(r.side)) {
		return nil
	}
	b := r.side[r.sideAt[i] : r.sideAt[i]+uint64(f.Meta) : r.sideAt[i]+uint64(f.Meta)]
	return b[8:]
}

// openSized opens a file of dir and says how long it is.
func openSized(dir, name string) (*os.File, int64, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// NewReader reads a chunk from ra (size bytes). side is the external frame
// table (open or uncompressed chunks), nil for a finished compressed chunk.
// A damaged table is rebuilt (seek table, else a scan of the frames) and
// said so in Note; only a chunk nothing can be read from is an error.
func NewReader(in Info, ra io.ReaderAt, size int64, side []byte, dec *zstd.Decoder) (*Reader, error) {
	r := &Reader{Info: in, ra: ra, size: size, dec: dec}
	if in.Zstd && !in.Open {
		t, note, lost, err := embeddedTable(ra, size)
		if err != nil {
			return nil, err
		}
		r.Table, r.Note, r.Lost = t, note, lost
		return r, nil
	}
	t, err := ParseTable(side)
	if err != nil {
		if in.Open {
			return nil, err
		}
		// An uncompressed chunk is one pcap frame when its table is lost.
		t = &Table{Frames: []Frame{{CSize: uint32(size), DSize: uint32(size), MinTS: math.MinInt64, MaxTS: math.MaxInt64}}}
		r.Note = fmt.Sprintf("frame table unusable (%v): reading the whole chunk", err)
	}
	// Frames of an open chunk whose bytes are not all there yet are not shown.
	for len(t.Frames) > 0 {
		f := t.Frames[len(t.Frames)-1]
		if f.Off+uint64(f.CSize) <= uint64(size) {
			break
		}
		t.Frames = t.Frames[:len(t.Frames)-1]
	}
	r.Table = t
	return r, nil
}

func readAt(ra io.ReaderAt, off, n int64, size int64) ([]byte, error) {
	if off < 0 || n < 0 || off+n > size {
		return nil, fmt.Errorf("%w: range %d+%d beyond %d bytes", ErrCorrupt, off, n, size)
	}
	b := make([]byte, n)
	if _, err := ra.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// embeddedTable finds the frame table of a finished compressed chunk,
// falling back to the seek table and then to a scan of the zstd frames;
// lost says the scan stopped at damage, so frames after it are missing.
func embeddedTable(ra io.ReaderAt, size int64) (*Table, string, bool, error) {
	le := binary.LittleEndian
	seek, serr := seekTable(ra, size)
	if serr == nil {
		var end uint64
		for _, f := range seek {
			end += uint64(f.CSize)
		}
		hdr, err := readAt(ra, int64(end), 8, size)
		if err == nil && le.Uint32(hdr) == skipFtab {
			if body, err := readAt(ra, int64(end)+8, int64(le.Uint32(hdr[4:])), size); err == nil {
				if t, err := ParseTable(body); err == nil && !t.Cut && matches(t.Frames, seek) {
					return t, "", false, nil
				}
			}
		}
		return &Table{Zstd: true, Frames: seek}, "frame table damaged: using the seek table (times unknown, every frame is read)", false, nil
	}
	frames, err := scanFrames(ra, size)
	if len(frames) == 0 {
		return nil, "", true, fmt.Errorf("%w: no seek table (%v) and no readable frame (%v)", ErrCorrupt, serr, err)
	}
	if err != nil {
		return &Table{Zstd: true, Frames: frames}, fmt.Sprintf("seek table damaged (%v): %d frames found by scanning, which stopped at %v", serr, len(frames), err), true, nil
	}
	return &Table{Zstd: true, Frames: frames}, fmt.Sprintf("seek table damaged (%v): %d frames found by scanning", serr, len(frames)), false, nil
}

func matches(t, seek []Frame) bool {
	if len(t) != len(seek) {
		return false
	}
	for i := range t {
		if t[i].Off != seek[i].Off || t[i].CSize != seek[i].CSize || t[i].DSize != seek[i].DSize || t[i].Sum != seek[i].Sum {
			return false
		}
	}
	return true
}

// unknownFrame is a frame whose seqs and times are not known.
func unknownFrame(off uint64, csize, dsize, sum uint32) Frame {
	return Frame{Off: off, CSize: csize, DSize: dsize, Sum: sum, MinTS: math.MinInt64, MaxTS: math.MaxInt64}
}

// seekTable decodes the zstd seekable-format seek table at the end of a chunk.
func seekTable(ra io.ReaderAt, size int64) ([]Frame, error) {
	le := binary.LittleEndian
	foot, err := readAt(ra, size-seekFooter, seekFooter, size)
	if err != nil {
		return nil, err
	}
	if le.Uint32(foot[5:]) != seekMagic {
		return nil, fmt.Errorf("%w: no seekable-format footer", ErrCorrupt)
	}
	n := int64(le.Uint32(foot))
	if foot[4] != 0x80 {
		return nil, fmt.Errorf("%w: seek table without checksums", ErrCorrupt)
	}
	body := n*seekEntry + seekFooter
	if n <= 0 || body+8 > size {
		return nil, fmt.Errorf("%w: seek table of %d frames in %d bytes", ErrCorrupt, n, size)
	}
	hdr, err := readAt(ra, size-body-8, body+8, size)
	if err != nil {
		return nil, err
	}
	if le.Uint32(hdr) != skipSeekTable || int64(le.Uint32(hdr[4:])) != body {
		return nil, fmt.Errorf("%w: seek table frame header", ErrCorrupt)
	}
	out := make([]Frame, 0, n)
	var off uint64
	for i := int64(0); i < n; i++ {
		e := hdr[8+i*seekEntry:]
		f := unknownFrame(off, le.Uint32(e), le.Uint32(e[4:]), le.Uint32(e[8:]))
		if f.CSize == 0 {
			return nil, fmt.Errorf("%w: seek table entry %d is empty", ErrCorrupt, i)
		}
		off += uint64(f.CSize)
		out = append(out, f)
	}
	if off > uint64(size-body-8) {
		return nil, fmt.Errorf("%w: seek table covers %d bytes, chunk has %d", ErrCorrupt, off, size-body-8)
	}
	return out, nil
}

// scanFrames walks zstd frame headers and block headers from the start of the
// file: the last resort when both tables are damaged.
func scanFrames(ra io.ReaderAt, size int64) ([]Frame, error) {
	le := binary.LittleEndian
	var out []Frame
	off := int64(0)
	for off+8 <= size {
		h, err := readAt(ra, off, min(18, size-off), size)
		if err != nil {
			return out, err
		}
		start, meta := off, int64(0)
		if le.Uint32(h) == skipMeta { // the frame's metadata, then its zstd frame
			meta = 8 + int64(le.Uint32(h[4:]))
			if off+meta+8 > size {
				return out, fmt.Errorf("%w: metadata frame at %d runs past the end", ErrCorrupt, off)
			}
			off += meta
			if h, err = readAt(ra, off, min(18, size-off), size); err != nil {
				return out, err
			}
		}
		if m := le.Uint32(h); m != zstdMagic {
			if meta != 0 {
				return out, fmt.Errorf("%w: no zstd frame after the metadata frame at %d", ErrCorrupt, start)
			}
			if m&0xFFFFFFF0 == 0x184D2A50 {
				return out, nil // the tables
			}
			return out, fmt.Errorf("%w: no zstd frame at offset %d", ErrCorrupt, off)
		}
		fhd := h[4]
		single := fhd>>5&1 == 1
		hl := int64(5)
		if !single {
			hl++
		}
		hl += [4]int64{0, 1, 2, 4}[fhd&3]
		fcsLen := [4]int64{0, 2, 4, 8}[fhd>>6]
		if fcsLen == 0 && single {
			fcsLen = 1
		}
		if hl+fcsLen > int64(len(h)) {
			return out, fmt.Errorf("%w: short frame header at %d", ErrCorrupt, off)
		}
		var dsize uint64
		fb := h[hl : hl+fcsLen]
		switch fcsLen {
		case 1:
			dsize = uint64(fb[0])
		case 2:
			dsize = uint64(le.Uint16(fb)) + 256
		case 4:
			dsize = uint64(le.Uint32(fb))
		case 8:
			dsize = le.Uint64(fb)
		}
		pos := off + hl + fcsLen
		for {
			bh, err := readAt(ra, pos, 3, size)
			if err != nil {
				return out, err
			}
			v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
			bt, bs := v>>1&3, int64(v>>3)
			if bt == 3 {
				return out, fmt.Errorf("%w: reserved block type at %d", ErrCorrupt, pos)
			}
			if bt == 1 {
				bs = 1
			}
			pos += 3 + bs
			if pos > size {
				return out, fmt.Errorf("%w: block past the end at %d", ErrCorrupt, pos)
			}
			if v&1 == 1 {
				break
			}
		}
		if fhd>>2&1 == 1 {
			pos += 4
		}
		if pos > size || dsize > math.MaxUint32 {
			return out, fmt.Errorf("%w: frame at %d", ErrCorrupt, off)
		}
		f := unknownFrame(uint64(start), uint32(pos-start), uint32(dsize), 0)
		f.Meta = uint32(meta)
		out = append(out, f)
		off = pos
	}
	// A finished chunk ends with its tables: without them, frames may
	// have been cut off too.
	return out, fmt.Errorf("%w: the file ends at %d without its tables", ErrCorrupt, off)
}

// FrameError reports one frame that cannot be read; the rest of the chunk can.
type FrameError struct {
	Chunk string
	Index int
	Err   error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("chunk %q frame %d: %v", e.Chunk, e.Index, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// ReadFrame returns frame i's pcap bytes, verified against its checksum,
// in dst's storage when it is large enough.
func (r *Reader) ReadFrame(i int, dst []byte) ([]byte, error) {
	out, buf, err := r.ReadFrameInto(i, dst, r.buf)
	r.buf = buf
	return out, err
}

// ReadFrameInto is ReadFrame with the caller's buffer for the compressed
// bytes (returned, maybe grown): several goroutines may read frames of one
// Reader at once, each with its own buffers.
func (r *Reader) ReadFrameInto(i int, dst, cbuf []byte) (out, buf []byte, err error) {
	f, err := r.Frame(i)
	if err != nil {
		return nil, cbuf, err
	}
	return r.AppendFrame(i, f, dst[:0], cbuf)
}

// AppendFrame is ReadFrameInto for a frame whose entry f the caller already
// has from Frame(i); it appends the frame's bytes to dst (out is nil on
// error), so that a caller can gather several frames in one buffer.
func (r *Reader) AppendFrame(i int, f Frame, dst, cbuf []byte) (out, buf []byte, err error) {
	out, _, buf, err = r.AppendFrameMeta(i, f, dst, cbuf)
	return out, buf, err
}

// AppendFrameMeta is AppendFrame that also returns the frame's metadata
// payload (nil when the frame has none; Meta.Parse decodes it), which lies
// in buf (compressed chunks; in the Reader's sidecar for uncompressed
// ones): valid until buf is used again.
func (r *Reader) AppendFrameMeta(i int, f Frame, dst, cbuf []byte) (out, meta, buf []byte, err error) {
	fail := func(err error) ([]byte, []byte, []byte, error) {
		return nil, nil, cbuf, &FrameError{r.Info.Name, i, err}
	}
	if f.Off+uint64(f.CSize) > uint64(r.size) {
		return fail(fmt.Errorf("%w: frame beyond the end of the file", ErrCorrupt))
	}
	if f.DSize > MaxFrame || f.CSize > MaxFrame+MaxFrame/64+1024+maxMeta { // zstd's worst case adds well under 1/64
		return fail(fmt.Errorf("%w: frame of %d bytes (%d compressed), larger than any the writer makes", ErrCorrupt, f.DSize, f.CSize))
	}
	if cap(cbuf) < int(f.CSize) {
		cbuf = make([]byte, f.CSize)
	}
	b := cbuf[:f.CSize]
	if _, err := r.ra.ReadAt(b, int64(f.Off)); err != nil {
		return fail(err)
	}
	if r.lazy == nil && !r.Table.Zstd {
		if f.Sum != 0 || r.Note == "" {
			if Sum(b) != f.Sum {
				return fail(fmt.Errorf("%w: checksum mismatch", ErrCorrupt))
			}
		}
		return append(dst, b...), r.sideMeta(i, &f), cbuf, nil
	}
	meta, b, err = splitMeta(b, f.Meta)
	if err != nil {
		return fail(err)
	}
	if need := len(dst) + int(f.DSize) + decodeSlack; f.DSize != 0 && cap(dst) < need {
		// Rounded up, so that a buffer reused for the next frames (fmslice
		// keeps a few dozen) is not outgrown by a frame a little larger:
		// every new buffer is fresh pages for the kernel to fault in.
		nd := make([]byte, len(dst), (need+bufRound-1)/bufRound*bufRound)
		copy(nd, dst)
		dst = nd
	}
	out, err = r.dec.DecodeAll(b, dst) // safe from several goroutines (see NewDecoder)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrCorrupt, err))
	}
	if f.DSize != 0 && len(out)-len(dst) != int(f.DSize) {
		return fail(fmt.Errorf("%w: %d bytes, table says %d", ErrCorrupt, len(out)-len(dst), f.DSize))
	}
	if f.Sum != 0 || r.Note == "" {
		// A frame that carries its content checksum (the writer's do) was
		// just verified against it by the decoder: comparing that checksum
		// with the table's binds the two without hashing the bytes again.
		sum := uint32(0)
		if len(b) >= 8 && b[4]&4 != 0 {
			sum = binary.LittleEndian.Uint32(b[len(b)-4:])
		} else {
			sum = Sum(out[len(dst):])
		}
		if sum != f.Sum {
			return fail(fmt.Errorf("%w: checksum mismatch", ErrCorrupt))
		}
	}
	return out, meta, cbuf, nil
}

// Close closes the chunk file (or its mapping).
func (r *Reader) Close() error {
	if r.m != nil {
		r.m.Unmap()
		r.m = nil
	}
	if r.f != nil {
		return r.f.Close()
	}
	return nil
}

// decodeSlack is room left past a frame's bytes in the buffer it is
// decompressed into: with at least 32 bytes (zstd's compressedBlockOverAlloc)
// the decoder uses its wide copies, which may write past the end of a match,
// instead of the exact ones (about a quarter slower here).
const decodeSlack = 64

// bufRound is what decompression buffers are rounded up to.
const bufRound = 32 << 10

// MaxFrame is the most pcap bytes a frame can hold: the writer's largest
// frame size (1 MiB) plus the packet that crosses it, and the chunk header.
const MaxFrame = 1<<20 + MaxRecord + pcapHdrSize

// maxMeta bounds a metadata frame: a run and an origin for every packet
// of the largest frame.
const maxMeta = 8 + metaHdrSize + 4 + (MaxFrame/pcapRecSize+1)*(metaRunSize+2+origin.Max)

// NewDecoder is the zstd decoder readers share (safe for concurrent DecodeAll).
// It refuses to produce more than MaxFrame bytes a frame: a damaged frame
// header claiming gigabytes is an error, not an allocation of gigabytes.
func NewDecoder() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxFrame))
	if err != nil {
		panic(err) // only bad options fail
	}
	return d
}
