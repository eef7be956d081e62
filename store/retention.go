package store

// Retention: the store is kept under a quota of bytes (the writer's
// --retain-bytes), above a minimum of free disk (--retain-free) and younger
// than an age (--retain-age, by each chunk's newest packet). The oldest
// finished chunks go first; the chunk being written is never touched, and
// the index segments reaching into a removed chunk go with it. Each removal
// is logged in the store's retention.log before the files go (logs.go), so
// fmslice can tell a query that the range it asks for was removed. When a
// write fails because the disk is full and any retention is set, the writer
// removes the oldest finished chunk at once to make room (Enforce with
// full); without retention the writer waits for room and the ring counts
// the drops.
//
// A tiered store (one with an upload mark, upload.go) keeps a hot window:
// the quota and the age remove only chunks the mark says are uploaded, so
// retention stops at the oldest chunk not yet uploaded. The free-disk
// minimum and a full disk still remove it (capture goes on): such a chunk
// is lost to the object store, which is logged and counted (LostToTier).
//
// The writer runs retention every RetainEvery and after each full-disk
// error, on two goroutines; a mutex keeps them from removing the same chunk.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// RetainEvery is how often Run enforces the limits.
const RetainEvery = 5 * time.Second

// Retention keeps the store in Dir within its limits (a zero limit is no
// limit). Its methods may be called from several goroutines.
type Retention struct {
	Dir      string
	MaxBytes uint64        // store quota
	MinFree  uint64        // minimum free disk
	MaxAge   time.Duration // by each chunk's newest packet
	Log      *slog.Logger

	mu           sync.Mutex
	removed      uint64 // chunks removed
	removedBytes uint64
	lostToTier   uint64 // chunks of a tiered store removed before their upload
}

// LostToTier is how many chunks of a tiered store retention removed
// before they were uploaded (the disk was about to fill).
func (r *Retention) LostToTier() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lostToTier
}

// Enabled says whether any limit is set.
func (r *Retention) Enabled() bool { return r.MaxBytes > 0 || r.MinFree > 0 || r.MaxAge > 0 }

// Totals is what retention removed so far: chunks and their bytes.
func (r *Retention) Totals() (chunks, bytes uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removed, r.removedBytes
}

// Enforce removes old chunks as the limits require; with full, at least
// one (the disk is full now). It returns how many it removed.
func (r *Retention) Enforce(now time.Time, full bool) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list, err := chunk.List(r.Dir)
	if err != nil {
		return 0, err
	}
	type item struct {
		in   chunk.Info
		size uint64
	}
	var items []item
	var total uint64
	for _, in := range list {
		sz := in.Size(r.Dir)
		total += sz
		if in.Open {
			continue // the chunk being written: counted in the total, never removed
		}
		items = append(items, item{in, sz})
	}
	through, tiered, err := ReadUploaded(r.Dir)
	if err != nil {
		// An unreadable mark: nothing counts as uploaded.
		r.Log.Error("retention: upload mark unreadable: only a full disk or retain_free removes chunks", "err", err)
		through = 0
	}
	removed := 0
	for _, it := range items { // oldest first: List sorts by seq
		reason := ""
		switch {
		case full && removed == 0:
			reason = "full"
		case r.MaxAge > 0 && it.in.MaxTS < now.Add(-r.MaxAge).UnixNano():
			reason = "age"
		case r.MaxBytes > 0 && total > r.MaxBytes:
			reason = "bytes"
		case r.MinFree > 0 && FreeBytes(r.Dir) < r.MinFree:
			reason = "free"
		}
		if reason == "" {
			break
		}
		notUploaded := tiered && it.in.LastSeq > through
		if notUploaded && (reason == "age" || reason == "bytes") {
			break // the hot window waits for the upload
		}
		// Log first, so that a crash cannot lose the record; on a full disk
		// the line cannot be written until the chunk is gone, so then the
		// other way round.
		logErr := LogRemoved(r.Dir, it.in, reason, now.UnixNano())
		if logErr != nil && !errors.Is(logErr, unix.ENOSPC) {
			return removed, logErr
		}
		for _, f := range it.in.Files() {
			if err := os.Remove(filepath.Join(r.Dir, f)); err != nil && !os.IsNotExist(err) {
				return removed, err
			}
		}
		if logErr != nil {
			if err := LogRemoved(r.Dir, it.in, reason, now.UnixNano()); err != nil {
				return removed + 1, fmt.Errorf("chunk %s removed, but not logged: %w", it.in.Name, err)
			}
		}
		r.dropSegments(it.in.LastSeq)
		total -= it.size
		removed++
		r.removed++
		r.removedBytes += it.size
		if notUploaded {
			r.lostToTier++
			r.Log.Warn("retention removed a chunk not yet uploaded: lost to the object store", "chunk", it.in.Name, "reason", reason)
		}
		r.Log.Info("retention removed a chunk", "chunk", it.in.Name, "bytes", it.size, "reason", reason,
			"first_seq", it.in.FirstSeq, "last_seq", it.in.LastSeq)
	}
	if removed > 0 {
		// The removals survive a crash only once the directory is synced; a
		// failure is said, since a chunk the log calls removed could come
		// back after one.
		if err := atomicfile.SyncDir(r.Dir); err != nil {
			return removed, fmt.Errorf("retention removed %d chunks: %w", removed, err)
		}
	}
	return removed, nil
}

// dropSegments removes the index segments (STORE/index) that reach into
// seqs up to last: the chunks are removed oldest first, so every earlier
// seq is gone, and no segment may point at frames that no longer exist.
// Seqs of such a segment that are still stored become unindexed: queries
// scan them (indexer --rebuild indexes them again).
func (r *Retention) dropSegments(last uint64) {
	dir := Index(r.Dir)
	segs, err := segment.List(dir)
	if err != nil {
		return
	}
	for _, s := range segs {
		if s.First <= last {
			os.Remove(filepath.Join(dir, s.Name))
		}
	}
}

// FreeBytes is the space available to unprivileged writers on dir's disk
// (the most a uint64 holds when it cannot be read).
func FreeBytes(dir string) uint64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return ^uint64(0)
	}
	return st.Bavail * uint64(st.Bsize)
}

// Run enforces the limits every RetainEvery until stop is closed, logging
// what fails.
func (r *Retention) Run(stop <-chan struct{}) {
	t := time.NewTicker(RetainEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := r.Enforce(time.Now(), false); err != nil {
			r.Log.Error("retention", "err", err)
		}
	}
}
