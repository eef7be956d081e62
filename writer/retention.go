package writer

// Retention: the store is kept under a quota of bytes (--retain-bytes),
// above a minimum of free disk (--retain-free) and younger than an age
// (--retain-age, by each chunk's newest packet). The oldest finished chunks
// go first; the chunk being written is never touched. Each removal is
// logged in the store's retention.log before the files go (see
// store/chunk/retention.go), so fmslice can tell a query that the range
// it asks for was removed. When a write fails because the disk is full and
// any retention is set, the oldest finished chunk is removed at once to
// make room; without retention the writer waits for room and the ring
// counts the drops.
//
// Retention runs every retainEvery and after each full-disk error, on its
// own goroutine; a mutex keeps the two from removing the same chunk.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

const retainEvery = 5 * time.Second

type retention struct {
	dir      string
	maxBytes uint64
	minFree  uint64
	maxAge   time.Duration
	log      *slog.Logger

	mu           sync.Mutex
	removed      uint64 // chunks removed
	removedBytes uint64
}

func (r *retention) enabled() bool { return r.maxBytes > 0 || r.minFree > 0 || r.maxAge > 0 }

// enforce removes old chunks as the limits require; with full, at least
// one (the disk is full now). It returns how many it removed.
func (r *retention) enforce(now time.Time, full bool) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list, err := chunk.List(r.dir)
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
		sz := in.Size(r.dir)
		total += sz
		if in.Open {
			continue // the chunk being written: counted in the total, never removed
		}
		items = append(items, item{in, sz})
	}
	removed := 0
	for _, it := range items { // oldest first: List sorts by seq
		reason := ""
		switch {
		case full && removed == 0:
			reason = "full"
		case r.maxAge > 0 && it.in.MaxTS < now.Add(-r.maxAge).UnixNano():
			reason = "age"
		case r.maxBytes > 0 && total > r.maxBytes:
			reason = "bytes"
		case r.minFree > 0 && freeBytes(r.dir) < r.minFree:
			reason = "free"
		}
		if reason == "" {
			break
		}
		// Log first, so that a crash cannot lose the record; on a full disk
		// the line cannot be written until the chunk is gone, so then the
		// other way round.
		logErr := chunk.LogRemoved(r.dir, it.in, reason, now.UnixNano())
		if logErr != nil && !errors.Is(logErr, unix.ENOSPC) {
			return removed, logErr
		}
		for _, f := range it.in.Files() {
			if err := os.Remove(filepath.Join(r.dir, f)); err != nil && !os.IsNotExist(err) {
				return removed, err
			}
		}
		if logErr != nil {
			if err := chunk.LogRemoved(r.dir, it.in, reason, now.UnixNano()); err != nil {
				return removed + 1, fmt.Errorf("chunk %s removed, but not logged: %w", it.in.Name, err)
			}
		}
		r.dropSegments(it.in.LastSeq)
		total -= it.size
		removed++
		r.removed++
		r.removedBytes += it.size
		r.log.Info("retention removed a chunk", "chunk", it.in.Name, "bytes", it.size, "reason", reason,
			"first_seq", it.in.FirstSeq, "last_seq", it.in.LastSeq)
	}
	if removed > 0 {
		if d, err := os.Open(r.dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return removed, nil
}

// dropSegments removes the index segments (STORE/index) that reach into
// seqs up to last: the chunks are removed oldest first, so every earlier
// seq is gone, and no segment may point at frames that no longer exist.
// Seqs of such a segment that are still stored become unindexed: queries
// scan them (indexer --rebuild indexes them again).
func (r *retention) dropSegments(last uint64) {
	dir := filepath.Join(r.dir, "index")
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

// freeBytes is the space available to unprivileged writers on dir's disk.
func freeBytes(dir string) uint64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return ^uint64(0)
	}
	return st.Bavail * uint64(st.Bsize)
}

// run enforces the limits every retainEvery until stop is closed.
func (r *retention) run(stop <-chan struct{}) {
	t := time.NewTicker(retainEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := r.enforce(time.Now(), false); err != nil {
			r.log.Error("retention", "err", err)
		}
	}
}
