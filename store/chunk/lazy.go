package chunk

// Random access to a finished compressed chunk, for queries that read a few
// frames of many chunks (fmslice with an index). OpenReader decodes a whole
// frame table and cross-checks it with the seek table: up to 80 000 entries
// a chunk (32 KiB frames of small packets), 780 000 over a 50 M-packet
// store, for a query that reads a few thousand frames. OpenLazy maps the
// file instead, finds both tables from the end, and checks an entry (its
// CRC, and its sizes and checksum against the seek table's) only when the
// query looks at it. Frames themselves are read with pread: decompressing
// them from the mapping cost more in page faults and unmapping than the
// copy (a 50 M-packet query: 82.8 ms mapped, 66.5 ms with pread).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/edsrzf/mmap-go"
	"github.com/klauspost/compress/zstd"
)

// ErrNotLazy: the chunk cannot be read lazily (open, uncompressed, or its
// tables do not check out at a glance); OpenReader reads it, repairing
// what it can.
var ErrNotLazy = errors.New("chunk not readable lazily")

type lazyTable struct {
	ents      []byte // n × EntrySize
	seek      []byte // n × seekEntry
	n         int
	framesEnd uint64
}

// OpenLazy opens a finished compressed chunk of dir for random access
// (NumFrames, Frame, SearchSeq, ReadFrameInto). Close releases it.
func OpenLazy(dir string, in Info, dec *zstd.Decoder) (*Reader, error) {
	if in.Open || !in.Zstd {
		return nil, ErrNotLazy
	}
	f, size, err := openSized(dir, in.Name)
	if err != nil {
		return nil, err
	}
	if size < seekFooter+8+ftabHdrSize+8 {
		f.Close()
		return nil, ErrNotLazy
	}
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("chunk %q: mmap: %w", in.Name, err)
	}
	t, err := findTables(m)
	if err != nil {
		m.Unmap()
		f.Close()
		return nil, fmt.Errorf("chunk %q: %w: %v", in.Name, ErrNotLazy, err)
	}
	return &Reader{Info: in, ra: f, f: f, size: size, dec: dec, m: m, lazy: t}, nil
}

// findTables locates the seek table (from the footer) and the frame table
// (the skippable frame just before it, of exactly the size n entries take)
// and checks the frame table's header.
func findTables(m []byte) (*lazyTable, error) {
	le := binary.LittleEndian
	size := uint64(len(m))
	foot := m[size-seekFooter:]
	if le.Uint32(foot[5:]) != seekMagic || foot[4] != 0x80 {
		return nil, errors.New("no seek table with checksums")
	}
	n := uint64(le.Uint32(foot))
	body := n*seekEntry + seekFooter
	ftab := ftabHdrSize + n*EntrySize
	if n == 0 || body+8+ftab+8 > size {
		return nil, errors.New("tables larger than the chunk")
	}
	seekAt := size - body - 8
	if le.Uint32(m[seekAt:]) != skipSeekTable || uint64(le.Uint32(m[seekAt+4:])) != body {
		return nil, errors.New("seek table frame header")
	}
	ftAt := seekAt - ftab - 8
	if le.Uint32(m[ftAt:]) != skipFtab || uint64(le.Uint32(m[ftAt+4:])) != ftab {
		return nil, errors.New("frame table frame header")
	}
	h := m[ftAt+8 : ftAt+8+ftabHdrSize]
	if string(h[:4]) != ftabMagic || le.Uint32(h[28:]) != crc32.Checksum(h[:28], crcTable) ||
		le.Uint16(h[4:]) != ftabVersion || le.Uint32(h[16:]) != EntrySize || le.Uint16(h[6:])&flagZstd == 0 {
		return nil, errors.New("frame table header")
	}
	return &lazyTable{
		ents: m[ftAt+8+ftabHdrSize : ftAt+8+ftab], seek: m[seekAt+8 : seekAt+8+n*seekEntry],
		n: int(n), framesEnd: ftAt,
	}, nil
}

// NumFrames is the number of frames.
func (r *Reader) NumFrames() int {
	if r.lazy != nil {
		return r.lazy.n
	}
	return len(r.Table.Frames)
}

// Frame is frame i's table entry; a lazy reader checks it first (its CRC,
// its sizes and checksum against the seek table, its fields against each
// other as the table's parser does, its bounds). Whether it follows frame
// i-1 is Follows.
func (r *Reader) Frame(i int) (Frame, error) {
	t := r.lazy
	if t == nil {
		return r.Table.Frames[i], nil
	}
	if i < 0 || i >= t.n {
		return Frame{}, &FrameError{r.Info.Name, i, fmt.Errorf("%w: no frame %d of %d", ErrCorrupt, i, t.n)}
	}
	le := binary.LittleEndian
	e := t.ents[i*EntrySize : (i+1)*EntrySize]
	s := t.seek[i*seekEntry:]
	f := decodeEntry(e)
	if le.Uint32(e[60:]) != crc32.Checksum(e[:60], crcTable) ||
		f.CSize != le.Uint32(s) || f.DSize != le.Uint32(s[4:]) || f.Sum != le.Uint32(s[8:]) ||
		!f.whole(true) || f.Off+uint64(f.CSize) > t.framesEnd {
		return Frame{}, &FrameError{r.Info.Name, i, fmt.Errorf("%w: frame table entry damaged", ErrCorrupt)}
	}
	return f, nil
}

// SearchSeq is the index of the first frame whose last seq is at least seq
// (NumFrames if none): frames hold consecutive seqs in file order. It
// guesses from the chunk's seq range (frames hold similar numbers of seqs,
// so the guess is usually the frame or next to it), then gallops away from
// the guess until it passes the answer and bisects what is left: 2 entries
// for a good guess, O(log distance) for a bad one. Each entry looked at is
// checked, and a lazy table is read only where looked at.
func (r *Reader) SearchSeq(seq uint64) (int, error) {
	n := r.NumFrames()
	if n == 0 {
		return 0, nil
	}
	var err error
	ends := func(i int) bool { // frame i ends at or after seq (monotone in i)
		f, ferr := r.Frame(i)
		if ferr != nil {
			err = ferr
			return true
		}
		return f.LastSeq >= seq
	}
	g := 0
	switch first, last := r.Info.FirstSeq, r.Info.LastSeq; {
	case seq >= last:
		g = n - 1
	case seq > first: // so last > first, and last-first+1 > 0 unless it wraps
		x := float64(seq-first) / (float64(last-first) + 1) * float64(n)
		g = int(min(max(x, 0), float64(n-1)))
	}
	// The answer is in lo+1..hi: frame lo (if lo ≥ 0) ends before seq, frame
	// hi (if hi < n) at or after it.
	lo, hi := -1, n
	if ends(g) {
		hi = g
		for step := 1; g-step >= 0 && err == nil; step *= 2 {
			if !ends(g - step) {
				lo = g - step
				break
			}
			hi = g - step
		}
	} else {
		lo = g
		for step := 1; g+step < n && err == nil; step *= 2 {
			if ends(g + step) {
				hi = g + step
				break
			}
			lo = g + step
		}
	}
	for hi-lo > 1 && err == nil {
		if m := lo + (hi-lo)/2; ends(m) {
			hi = m
		} else {
			lo = m
		}
	}
	return hi, err
}
