package store

// # Tiering: the uploader
//
// Uploader copies a local store's finished chunks and index segments to
// a second Backend (an object store: s3://BUCKET/PREFIX/NODE/), under the
// same names, and records how far it got in STORE/uploaded:
//
//	fmcap-uploaded 1\n
//	through SEQ\n          every finished chunk with last seq ≤ SEQ is in
//	                       the remote store, complete and checked
//	to DEST\n              where (for operators; not read back)
//
// The file is replaced atomically (atomicfile) only after the remote store
// confirmed the objects (Put checked the whole content's CRC-32C), so a
// kill -9 at any point leaves it at or below what is safely uploaded. Its
// presence makes the store tiered: retention (retention.go) then removes
// a chunk for the byte quota or the age (the hot window) only once it is
// at or below SEQ; only a disk about to fill (--retain-free, or full)
// removes chunks not uploaded, and that loss is counted and logged.
//
// Segments are uploaded first in each pass (retention drops the segments
// reaching into a chunk it removes). Chunks are uploaded in seq order,
// Parallel at once; the mark advances
// over the longest prefix of the backlog that is done. On start the
// uploader lists the remote store once: a chunk already there (a crash
// after its upload, before the mark moved) is kept when its size and
// CRC-32C are the local file's, and uploaded again otherwise (same name:
// the object is replaced whole, never duplicated). An uncompressed chunk's
// metadata sidecar and frame table go before the chunk, so a listed chunk
// always has them (an old chunk without a sidecar uploads without one). A
// segment retention removed before its upload (the indexer wrote it after
// the chunks it reaches into were uploaded and removed) is not uploaded:
// queries of the bucket scan its seqs.
//
// The uploader is its own process (cmd/fmupload): it never holds the
// writer back (it only reads published files), and its backlog is the
// store's finished chunks, bounded by the disk and by retention.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// UploadedMark is the uploader's record of what is safely uploaded.
const UploadedMark = "uploaded"

// ReadUploaded returns the seq through which the store in dir is uploaded;
// tiered is false when the store has no mark (not tiered).
func ReadUploaded(dir string) (through uint64, tiered bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, UploadedMark))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, true, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || lines[0] != "fmcap-uploaded 1" || !strings.HasPrefix(lines[1], "through ") {
		return 0, true, fmt.Errorf("%s: not an upload mark (want \"fmcap-uploaded 1\", \"through SEQ\")", filepath.Join(dir, UploadedMark))
	}
	through, err = strconv.ParseUint(strings.TrimPrefix(lines[1], "through "), 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("%s: %w", filepath.Join(dir, UploadedMark), err)
	}
	return through, true, nil
}

// WriteUploaded replaces the mark, durably.
func WriteUploaded(dir string, through uint64, to string) error {
	b := fmt.Appendf(nil, "fmcap-uploaded 1\nthrough %d\nto %s\n", through, to)
	return atomicfile.Write(filepath.Join(dir, UploadedMark), b, atomicfile.Options{Mode: fsmode.File})
}

// Uploader tiers the store in Dir to Remote. Run it in one process per
// store (it takes STORE/.upload.lock).
type Uploader struct {
	Dir      string
	Remote   Backend
	Parallel int           // chunks uploaded at once; default 2
	Poll     time.Duration // how often the store is looked at; default 1 s
	Log      *slog.Logger
	// Sweep, when set, runs between passes (no upload in flight) after a
	// failed pass, until it succeeds once: fmupload aborts there the
	// multipart uploads a failure could not abort (the server was down).
	Sweep func(context.Context) error

	remote map[string]Object // the remote listing at start: name → object
	segs   map[string]bool   // segments confirmed uploaded
	busy   bool              // the last pass had chunks to upload

	chunks, bytes, segments, failures, lost atomic.Uint64
	backlogChunks, backlogBytes, through    atomic.Uint64
	lagNs                                   atomic.Int64
}

// UploadStats are the uploader's counters, for metrics.
type UploadStats struct {
	Chunks, Bytes, Segments uint64 // uploaded (or found complete) since start
	Failures                uint64 // uploads that failed (each retried)
	Lost                    uint64 // chunks retention removed before their upload
	BacklogChunks           uint64 // finished chunks not yet uploaded
	BacklogBytes            uint64
	Through                 uint64        // the mark
	Lag                     time.Duration // age of the oldest packet not yet uploaded
}

// Stats reads the counters.
func (u *Uploader) Stats() UploadStats {
	return UploadStats{Chunks: u.chunks.Load(), Bytes: u.bytes.Load(), Segments: u.segments.Load(),
		Failures: u.failures.Load(), Lost: u.lost.Load(), BacklogChunks: u.backlogChunks.Load(),
		BacklogBytes: u.backlogBytes.Load(), Through: u.through.Load(), Lag: time.Duration(u.lagNs.Load())}
}

// Lock takes the store's upload lock (one uploader a store); release it
// with the returned function.
func (u *Uploader) Lock() (func(), error) {
	f, err := fsmode.OpenFile(filepath.Join(u.Dir, ".upload.lock"), os.O_RDWR|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("upload lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("store %s: another uploader runs (%s held): %w", u.Dir, f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// Run uploads until ctx is done: a pass every Poll, a failed pass retried
// with backoff (the object store down: the backlog waits on disk).
func (u *Uploader) Run(ctx context.Context) error {
	if u.Poll <= 0 {
		u.Poll = time.Second
	}
	backoff := u.Poll
	sweep := false
	for {
		if sweep && u.Sweep != nil {
			if err := u.Sweep(ctx); err != nil {
				u.Log.Warn("sweep after a failed pass", "err", err)
			} else {
				sweep = false
			}
		}
		err := u.Pass(ctx)
		sweep = sweep || err != nil
		if ctx.Err() != nil {
			return nil
		}
		delay := u.Poll
		switch {
		case err != nil:
			delay = backoff
			u.Log.Warn("upload pass failed; retrying", "err", err, "after", delay)
			backoff = min(2*backoff, 30*time.Second)
		case u.busy:
			// A pass with chunks to upload took a while, and the writer
			// has likely finished more meanwhile: look again at once.
			// Waiting a poll left the uploader idle while the backlog grew
			// (at 1 GB/s of capture, a 32 MiB chunk every 30 ms).
			delay = 0
			backoff = u.Poll
		default:
			backoff = u.Poll
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// Pass uploads what is finished now and not yet uploaded, and moves the
// mark. The first pass lists the remote store.
func (u *Uploader) Pass(ctx context.Context) error {
	if u.Parallel <= 0 {
		u.Parallel = 2
	}
	if u.remote == nil {
		objs, err := u.Remote.List(ctx, "")
		if err != nil {
			return err
		}
		idx, err := u.Remote.List(ctx, IndexDir)
		if err != nil {
			return err
		}
		u.remote = map[string]Object{}
		u.segs = map[string]bool{}
		for _, o := range append(objs, idx...) {
			u.remote[o.Name] = o
		}
	}
	through, _, err := ReadUploaded(u.Dir)
	if err != nil {
		return err
	}
	u.through.Store(through)
	list, err := chunk.List(u.Dir)
	if err != nil {
		return err
	}
	var backlog []chunk.Info
	var bytes uint64
	for _, in := range list {
		if !in.Open && in.LastSeq > through {
			backlog = append(backlog, in)
			bytes += in.Size(u.Dir)
		}
	}
	u.busy = len(backlog) > 0
	u.backlogChunks.Store(uint64(len(backlog)))
	u.backlogBytes.Store(bytes)
	if len(backlog) > 0 {
		u.lagNs.Store(max(time.Now().UnixNano()-backlog[0].MinTS, 0))
	} else {
		u.lagNs.Store(0)
	}
	// Segments first: retention drops the segments reaching into a chunk
	// it removes, and the chunk goes once uploaded.
	segErr := u.uploadSegments(ctx)
	return errors.Join(segErr, u.uploadChunks(ctx, backlog, through))
}

func (u *Uploader) uploadChunks(ctx context.Context, backlog []chunk.Info, through uint64) error {
	done := make([]bool, len(backlog))
	type result struct {
		i   int
		err error
	}
	results := make(chan result)
	next := 0
	inFlight := 0
	var firstErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mark := 0 // backlog[:mark] are done and under the mark
	for {
		for inFlight < u.Parallel && next < len(backlog) && firstErr == nil {
			i := next
			next++
			inFlight++
			go func() { results <- result{i, u.uploadChunk(ctx, backlog[i])} }()
		}
		if inFlight == 0 {
			return firstErr
		}
		r := <-results
		inFlight--
		if r.err != nil {
			u.failures.Add(1)
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		done[r.i] = true
		moved := false
		for mark < len(backlog) && done[mark] {
			through = backlog[mark].LastSeq
			mark++
			moved = true
		}
		if moved {
			if err := WriteUploaded(u.Dir, through, u.Remote.String()); err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("upload mark: %w", err)
				}
				continue
			}
			u.through.Store(through)
			u.backlogChunks.Store(uint64(len(backlog) - mark))
			var left uint64
			for _, in := range backlog[mark:] {
				left += in.Size(u.Dir)
			}
			u.backlogBytes.Store(left)
			if mark < len(backlog) {
				u.lagNs.Store(max(time.Now().UnixNano()-backlog[mark].MinTS, 0))
			} else {
				u.lagNs.Store(0)
			}
		}
	}
}

// uploadChunk puts a chunk's files (the chunk itself last) unless the
// remote store has them complete already. A chunk retention removed first
// is counted lost, and done.
func (u *Uploader) uploadChunk(ctx context.Context, in chunk.Info) error {
	files := in.Files()
	for k := len(files) - 1; k >= 0; k-- { // the chunk itself last
		name := files[k]
		n, err := u.putFile(ctx, name)
		if errors.Is(err, fs.ErrNotExist) && name == in.MetaFile() {
			continue // an uncompressed chunk from before metadata sidecars
		}
		if errors.Is(err, fs.ErrNotExist) {
			u.lost.Add(1)
			u.Log.Warn("chunk removed before its upload (disk full or retain_free): lost to the object store", "chunk", in.Name)
			return nil
		}
		if err != nil {
			return fmt.Errorf("upload %s: %w", name, err)
		}
		u.bytes.Add(uint64(n))
	}
	u.chunks.Add(1)
	u.Log.Debug("uploaded", "chunk", in.Name)
	return nil
}

// putFile uploads the local file name (relative to Dir) unless the remote
// listing had it with the same size and CRC-32C; it returns the size.
func (u *Uploader) putFile(ctx context.Context, name string) (int64, error) {
	f, err := os.Open(filepath.Join(u.Dir, filepath.FromSlash(name)))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if o, ok := u.remote[name]; ok && o.Size == st.Size() {
		// There already (a crash after the upload, before the mark):
		// keep it if it is this file.
		if ro, err := u.Remote.Stat(ctx, name); err == nil && ro.CRC32C != "" {
			sum, err := CRC32C(f)
			if err != nil {
				return 0, err
			}
			if sum == ro.CRC32C {
				return st.Size(), nil
			}
		}
		if _, err := f.Seek(0, 0); err != nil {
			return 0, err
		}
	}
	if _, err := u.Remote.Put(ctx, name, f, st.Size()); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (u *Uploader) uploadSegments(ctx context.Context) error {
	segs, err := segment.List(Index(u.Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, u.Parallel)
	var wg sync.WaitGroup
	for _, s := range segs {
		name := path.Join(IndexDir, s.Name)
		if u.segs[name] {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := u.putFile(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, fs.ErrNotExist): // removed by retention meanwhile
			case err != nil:
				u.failures.Add(1)
				if firstErr == nil {
					firstErr = fmt.Errorf("upload %s: %w", name, err)
				}
			default:
				u.segs[name] = true
				u.segments.Add(1)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func flock(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }
