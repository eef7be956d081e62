package chunk

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/fsmode"
)

const (
	extZstd = ".pcap.zst"
	extPcap = ".pcap"
	extFtab = ".ftab"
	extMeta = ".fmpm"
	openPfx = ".open-"
)

// FinalName is the published name of a chunk.
func FinalName(first, last uint64, minTS, maxTS int64, zstd bool) string {
	ext := extPcap
	if zstd {
		ext = extZstd
	}
	return fmt.Sprintf("chunk-%020d-%020d-%019d-%019d%s", first, last, minTS, maxTS, ext)
}

func openName(first uint64, zstd bool) string {
	if zstd {
		return fmt.Sprintf("%s%020d%s", openPfx, first, extZstd)
	}
	return fmt.Sprintf("%s%020d%s", openPfx, first, extPcap)
}

// ftabName is where a chunk's frame table lives outside the chunk: the live
// table of an open compressed chunk (removed once it is embedded), or the
// permanent table of an uncompressed one (named by first seq only, so that
// publishing the chunk is a single rename).
func ftabName(first uint64, zstd bool) string {
	if zstd {
		return fmt.Sprintf("%s%020d%s", openPfx, first, extFtab)
	}
	return fmt.Sprintf("chunk-%020d%s", first, extFtab)
}

// metaName is an uncompressed chunk's metadata sidecar (FORMAT, "Store
// directory"): named by first seq like its frame table, from the start, so
// that publishing the chunk stays a single rename.
func metaName(first uint64) string {
	return fmt.Sprintf("chunk-%020d%s", first, extMeta)
}

// Sum is the frame checksum: the low 32 bits of XXH64 of the pcap bytes.
func Sum(b []byte) uint32 { return uint32(xxhash.Sum64(b)) }

// Writer appends frames to one open chunk.
type Writer struct {
	dir      string
	zstd     bool
	ringID   uint64
	firstSeq uint64
	data     *os.File
	ftab     *os.File
	meta     *os.File // none mode: the metadata sidecar; nil in zstd mode
	size     uint64   // bytes of whole frames in data
	metaSize uint64   // none mode: bytes of whole frames' metadata in meta
	flushed  uint64   // data bytes handed to the kernel's writeback (see Append)
	frames   []Frame
	entry    []byte
	iov      [][]byte
	miov     [][]byte
}

// Create opens a new chunk whose first packet has seq first.
func Create(dir string, first uint64, zstd bool, ringID uint64) (*Writer, error) {
	w := &Writer{dir: dir, zstd: zstd, ringID: ringID, firstSeq: first}
	var err error
	dp := filepath.Join(dir, openName(first, zstd))
	if w.data, err = fsmode.OpenFile(dp, os.O_RDWR|os.O_CREATE|os.O_TRUNC); err != nil {
		return nil, fmt.Errorf("create chunk: %w", err)
	}
	fp := filepath.Join(dir, ftabName(first, zstd))
	if w.ftab, err = fsmode.OpenFile(fp, os.O_RDWR|os.O_CREATE|os.O_TRUNC); err != nil {
		w.data.Close()
		os.Remove(dp)
		return nil, fmt.Errorf("create frame table: %w", err)
	}
	if !zstd {
		mp := filepath.Join(dir, metaName(first))
		if w.meta, err = fsmode.OpenFile(mp, os.O_RDWR|os.O_CREATE|os.O_TRUNC); err != nil {
			w.Abandon()
			return nil, fmt.Errorf("create metadata sidecar: %w", err)
		}
	}
	if _, err := w.ftab.Write(appendFtabHeader(nil, zstd, ringID)); err != nil {
		w.Abandon()
		return nil, fmt.Errorf("write frame table %q: %w", fp, err)
	}
	return w, nil
}

// Len is the number of bytes of whole frames written so far.
func (w *Writer) Len() uint64 { return w.size }

// NumFrames is the number of frames written so far.
func (w *Writer) NumFrames() int { return len(w.frames) }

// FirstSeq is the seq of the chunk's first packet.
func (w *Writer) FirstSeq() uint64 { return w.firstSeq }

// Append writes one frame (compressed bytes, or plain pcap bytes in none mode)
// and then its frame table entry; f carries everything but Off and CSize. On
// error nothing of the frame remains (the files are cut back), so the caller
// may retry or stop without leaving a partial frame that a reader would see.
func (w *Writer) Append(b []byte, f Frame) error {
	return w.AppendBatch([][]byte{b}, []Frame{f})
}

// AppendBatch is Append for several frames, with one write for their bytes
// (writev) and one for their entries: at 32 KiB frames and 1.3 GB/s, two
// syscalls a frame were 80 000 a second, and on ext4 they held up the
// store stage. Nothing of the batch remains on error. fs is updated with
// the frames' offsets and sizes.
func (w *Writer) AppendBatch(bs [][]byte, fs []Frame) error {
	return w.AppendBatchMeta(bs, nil, fs)
}

// AppendBatchMeta is AppendBatch for an uncompressed chunk with each
// frame's metadata frame (MetaBuilder.AppendFrame) in ms, written to the
// sidecar and sized in the entry's Meta; ms is nil for none (and in zstd
// mode, where the metadata is in bs and the caller sets Meta). The sidecar
// is written after the chunk's bytes and before the entries: an entry, the
// commit of a frame, never points past either.
func (w *Writer) AppendBatchMeta(bs, ms [][]byte, fs []Frame) error {
	off, moff := w.size, w.metaSize
	w.entry = w.entry[:0]
	for i := range fs {
		fs[i].Off, fs[i].CSize = off, uint32(len(bs[i]))
		off += uint64(len(bs[i]))
		if !w.zstd {
			fs[i].Meta = 0
			if ms != nil {
				fs[i].Meta = uint32(len(ms[i]))
			}
			moff += uint64(fs[i].Meta)
		}
		w.entry = appendEntry(w.entry, &fs[i])
	}
	w.iov = append(w.iov[:0], bs...) // writev consumes its slices
	if err := writev(w.data, w.iov); err != nil {
		w.cutBack()
		return fmt.Errorf("write chunk %q: %w", w.data.Name(), err)
	}
	if moff != w.metaSize {
		w.miov = append(w.miov[:0], ms...)
		if err := writev(w.meta, w.miov); err != nil {
			w.cutBack()
			return fmt.Errorf("write metadata sidecar %q: %w", w.meta.Name(), err)
		}
	}
	if _, err := w.ftab.WriteAt(w.entry, int64(ftabHdrSize+len(w.frames)*EntrySize)); err != nil {
		w.cutBack()
		return fmt.Errorf("write frame table %q: %w", w.ftab.Name(), err)
	}
	w.size, w.metaSize = off, moff
	w.frames = append(w.frames, fs...)
	if w.size-w.flushed >= writebackStep {
		// Start writeback now (sync_file_range, SYNC_FILE_RANGE_WRITE does not
		// wait), so the disk works while the next frames compress. Without it
		// the kernel keeps a whole chunk dirty (far below dirty_ratio) and
		// Finalize's fsync writes it all at once while compression stalls.
		// Advisory: an error here changes nothing; Finalize's fsync decides.
		unix.SyncFileRange(int(w.data.Fd()), int64(w.flushed), int64(w.size-w.flushed), unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.size
	}
	return nil
}

// writev writes bs in order at f's offset, all of it or an error.
func writev(f *os.File, bs [][]byte) error {
	for len(bs) > 0 {
		n, err := unix.Writev(int(f.Fd()), bs[:min(len(bs), 1024)]) // IOV_MAX
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		for n > 0 && len(bs) > 0 { // skip what was written
			k := min(n, len(bs[0]))
			bs[0], n = bs[0][k:], n-k
			if len(bs[0]) == 0 {
				bs = bs[1:]
			}
		}
		for len(bs) > 0 && len(bs[0]) == 0 {
			bs = bs[1:]
		}
	}
	return nil
}

// writebackStep is how many chunk bytes are written before their writeback
// is started (bench/writer.sh, store on disk).
const writebackStep = 8 << 20

func (w *Writer) cutBack() {
	w.data.Truncate(int64(w.size))
	w.data.Seek(int64(w.size), io.SeekStart)
	w.ftab.Truncate(int64(ftabHdrSize + len(w.frames)*EntrySize))
	if w.meta != nil {
		w.meta.Truncate(int64(w.metaSize))
		w.meta.Seek(int64(w.metaSize), io.SeekStart)
	}
}

// Finalize completes the chunk: embeds the frame table and the seek table
// (compressed mode), fsyncs, renames to the final name and fsyncs the
// directory. It returns the final name, or "" when the chunk had no frame
// (then nothing is left behind).
func (w *Writer) Finalize() (string, error) {
	if len(w.frames) == 0 {
		w.Abandon()
		return "", nil
	}
	first, last := w.frames[0], w.frames[len(w.frames)-1]
	minTS, maxTS := first.MinTS, first.MaxTS
	for _, f := range w.frames {
		minTS, maxTS = min(minTS, f.MinTS), max(maxTS, f.MaxTS)
	}
	final := FinalName(first.FirstSeq, last.LastSeq, minTS, maxTS, w.zstd)
	if w.zstd {
		tail := w.tables()
		if _, err := w.data.Write(tail); err != nil {
			w.cutBack()
			return "", fmt.Errorf("finalize chunk %q: %w", w.data.Name(), err)
		}
	} else if err := w.ftab.Sync(); err != nil {
		return "", fmt.Errorf("finalize chunk: fsync %q: %w", w.ftab.Name(), err)
	} else if err := w.meta.Sync(); err != nil {
		return "", fmt.Errorf("finalize chunk: fsync %q: %w", w.meta.Name(), err)
	}
	if err := w.data.Sync(); err != nil {
		return "", fmt.Errorf("finalize chunk: fsync %q: %w", w.data.Name(), err)
	}
	if err := atomicfile.Rename(w.data.Name(), filepath.Join(w.dir, final)); err != nil {
		return "", fmt.Errorf("finalize chunk: %w", err)
	}
	w.data.Close()
	w.ftab.Close()
	if w.meta != nil {
		w.meta.Close()
	}
	if w.zstd {
		os.Remove(w.ftab.Name())
	}
	return final, nil
}

// tables is the tail of a compressed chunk: the fmcap frame table and the
// seek table, each in a skippable frame.
func (w *Writer) tables() []byte {
	le := binary.LittleEndian
	ft := appendFtabHeader(nil, true, w.ringID)
	for i := range w.frames {
		ft = appendEntry(ft, &w.frames[i])
	}
	b := make([]byte, 0, 8+len(ft)+8+len(w.frames)*seekEntry+seekFooter)
	b = le.AppendUint32(b, skipFtab)
	b = le.AppendUint32(b, uint32(len(ft)))
	b = append(b, ft...)
	b = le.AppendUint32(b, skipSeekTable)
	b = le.AppendUint32(b, uint32(len(w.frames)*seekEntry+seekFooter))
	for _, f := range w.frames {
		b = le.AppendUint32(b, f.CSize)
		b = le.AppendUint32(b, f.DSize)
		b = le.AppendUint32(b, f.Sum)
	}
	b = le.AppendUint32(b, uint32(len(w.frames)))
	b = append(b, 0x80)
	b = le.AppendUint32(b, seekMagic)
	return b
}

// Abandon closes and removes an open chunk (used when it holds nothing).
func (w *Writer) Abandon() {
	w.data.Close()
	os.Remove(w.data.Name())
	if w.ftab != nil {
		w.ftab.Close()
		os.Remove(w.ftab.Name())
	}
	if w.meta != nil {
		w.meta.Close()
		os.Remove(w.meta.Name())
	}
}

// RepairResult says what Recover did with one open chunk.
type RepairResult struct {
	Open    string // the open chunk's name
	Final   string // the name it was published under ("" if it held nothing)
	Kept    int    // whole frames kept
	Dropped int    // frames or entries cut (partial or damaged)
	LastSeq uint64 // last seq it holds (0 if none)
}

// Recover publishes every chunk left open by a writer that died: whole,
// verified frames are kept (a frame counts only once both its bytes and its
// frame table entry are written, which is also when the writer commits the
// ring cursor past it), anything after the first bad frame is cut off, and
// the chunk is finalized as usual. It also removes stray temporary files.
func Recover(dir string, dec *zstd.Decoder) ([]RepairResult, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recover store: %w", err)
	}
	var out []RepairResult
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, openPfx) || strings.HasSuffix(name, extFtab) {
			continue
		}
		res, err := repairOne(dir, name, dec)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	// A live frame table whose chunk is gone belongs to a chunk that was
	// published (renamed) just before a crash.
	ents, _ = os.ReadDir(dir)
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, openPfx) && strings.HasSuffix(name, extFtab) {
			first := strings.TrimSuffix(strings.TrimPrefix(name, openPfx), extFtab)
			if !names[openPfx+first+extZstd] {
				os.Remove(filepath.Join(dir, name))
			}
		}
	}
	return out, nil
}

func repairOne(dir, name string, dec *zstd.Decoder) (RepairResult, error) {
	res := RepairResult{Open: name}
	zst := strings.HasSuffix(name, extZstd)
	ext := extPcap
	if zst {
		ext = extZstd
	}
	first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, openPfx), ext), 10, 64)
	if err != nil {
		return res, fmt.Errorf("recover %q: name has no first seq", name)
	}
	w := &Writer{dir: dir, zstd: zst, firstSeq: first}
	if w.data, err = os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0); err != nil {
		return res, fmt.Errorf("recover %q: %w", name, err)
	}
	fp := filepath.Join(dir, ftabName(first, zst))
	if w.ftab, err = fsmode.OpenFile(fp, os.O_RDWR|os.O_CREATE); err != nil {
		w.data.Close()
		return res, fmt.Errorf("recover %q: %w", name, err)
	}
	raw, _ := io.ReadAll(w.ftab)
	var side []byte // none mode: the metadata sidecar (empty for chunks from before it)
	if !zst {
		if w.meta, err = fsmode.OpenFile(filepath.Join(dir, metaName(first)), os.O_RDWR|os.O_CREATE); err != nil {
			w.data.Close()
			w.ftab.Close()
			return res, fmt.Errorf("recover %q: %w", name, err)
		}
		side, _ = io.ReadAll(w.meta)
	}
	st, _ := w.data.Stat()
	var frames []Frame
	if t, err := ParseTable(raw); err == nil {
		frames = t.Frames
		w.ringID = t.RingID
	}
	var buf, out []byte
	for _, f := range frames {
		if f.Off+uint64(f.CSize) > uint64(st.Size()) {
			break
		}
		buf = append(buf[:0], make([]byte, f.CSize)...)
		if _, err := w.data.ReadAt(buf, int64(f.Off)); err != nil {
			break
		}
		if zst {
			var meta, z []byte
			if meta, z, err = splitMeta(buf, f.Meta); err != nil {
				break
			}
			if meta != nil {
				var m Meta
				if m.Parse(meta) != nil || m.Count() != f.Count {
					break
				}
			}
			if out, err = dec.DecodeAll(z, out[:0]); err != nil || len(out) != int(f.DSize) || Sum(out) != f.Sum {
				break
			}
		} else if Sum(buf) != f.Sum || f.DSize != f.CSize || !sideMetaWhole(side, w.metaSize, &f) {
			break
		}
		w.frames = append(w.frames, f)
		w.size = f.Off + uint64(f.CSize)
		if !zst {
			w.metaSize += uint64(f.Meta)
		}
	}
	res.Kept = len(w.frames)
	res.Dropped = len(frames) - len(w.frames)
	if st.Size() > int64(w.size) && res.Dropped == 0 {
		res.Dropped = 1 // bytes of a frame whose entry was never written
	}
	// Rewrite the table header (it may be damaged) and cut both files to the
	// kept frames, then publish as a normal chunk.
	hdr := appendFtabHeader(nil, zst, w.ringID)
	if _, err := w.ftab.WriteAt(hdr, 0); err != nil {
		return res, fmt.Errorf("recover %q: %w", name, err)
	}
	w.cutBack()
	if len(w.frames) > 0 {
		res.LastSeq = w.frames[len(w.frames)-1].LastSeq
	}
	if res.Final, err = w.Finalize(); err != nil {
		return res, fmt.Errorf("recover %q: %w", name, err)
	}
	return res, nil
}

// sideMetaWhole says whether frame f's metadata, at off in an uncompressed
// chunk's sidecar, is all there and describes the frame: crash repair keeps
// a frame only then, as it does a compressed frame's metadata frame.
func sideMetaWhole(side []byte, off uint64, f *Frame) bool {
	if f.Meta == 0 {
		return true // a frame from before the sidecar
	}
	if off+uint64(f.Meta) > uint64(len(side)) {
		return false
	}
	meta, rest, err := splitMeta(side[off:off+uint64(f.Meta)], f.Meta)
	var m Meta
	return err == nil && meta != nil && len(rest) == 0 && m.Parse(meta) == nil && m.Count() == f.Count
}
