package objstore

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/segment"
)

// Cache keeps, in a local directory, what queries of one bucket prefix
// read whole and read again: chunk tails (tails/NAME@SIZE) and index
// segments (index/seg-*, the object store's own names, so that the
// directory is an index directory the query planner reads as it reads a
// local one). Objects are immutable (a name says its seqs and times), so
// nothing cached goes stale; what the bucket no longer lists is dropped
// by SyncIndex. Files are written with atomicfile (0640, hidden temporary
// names); Trim keeps the directory under MaxBytes, least recently used
// (by modification time, touched on use) first.
type Cache struct {
	Dir      string
	MaxBytes int64 // 0: no bound
}

// DefaultCacheBytes bounds the cache unless told otherwise.
const DefaultCacheBytes = 2 << 30

// CacheFor is the cache of bucket/prefix under base (os.UserCacheDir()/
// fmcap/objstore when base is "").
func CacheFor(base, bucket, prefix string, maxBytes int64) (*Cache, error) {
	if base == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return nil, err
		}
		base = filepath.Join(d, "fmcap", "objstore")
	}
	dir := filepath.Join(base, bucket, filepath.FromSlash(strings.Trim(prefix, "/")))
	if err := fsmode.MkdirAll(dir); err != nil {
		return nil, err
	}
	return &Cache{Dir: dir, MaxBytes: maxBytes}, nil
}

func (c *Cache) path(name string) string { return filepath.Join(c.Dir, filepath.FromSlash(name)) }

func (c *Cache) get(name string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	b, err := os.ReadFile(c.path(name))
	if err != nil {
		return nil, false
	}
	now := time.Now()
	os.Chtimes(c.path(name), now, now)
	return b, true
}

func (c *Cache) put(name string, b []byte) {
	if c == nil {
		return
	}
	p := c.path(name)
	if fsmode.MkdirAll(filepath.Dir(p)) == nil {
		atomicfile.Write(p, b, atomicfile.Options{Mode: fsmode.File}) // a cache: a failure costs a GET next time
	}
}

// Trim removes the least recently used files until the cache holds at
// most MaxBytes.
func (c *Cache) Trim() {
	if c == nil || c.MaxBytes <= 0 {
		return
	}
	type ent struct {
		p    string
		size int64
		t    time.Time
	}
	var ents []ent
	var total int64
	filepath.WalkDir(c.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			ents = append(ents, ent{p, info.Size(), info.ModTime()})
			total += info.Size()
		}
		return nil
	})
	sort.Slice(ents, func(i, j int) bool { return ents[i].t.Before(ents[j].t) })
	for _, e := range ents {
		if total <= c.MaxBytes {
			break
		}
		if os.Remove(e.p) == nil {
			total -= e.size
		}
	}
}

// SyncIndex brings the index segments want asks for into the cache (want
// nil: all) and removes cached segments the bucket no longer lists; it
// returns the cache's index directory, for the query planner. Segments
// are fetched several at a time; one that cannot be fetched is left out
// (its seqs are then scanned, as for a local segment that is missing).
func (b *Backend) SyncIndex(ctx context.Context, want func(first, last uint64) bool) (string, error) {
	if b.Cache == nil {
		return "", errors.New("objstore: no cache directory for the index")
	}
	dir := b.Cache.path(store.IndexDir)
	if err := fsmode.MkdirAll(dir); err != nil {
		return "", err
	}
	objs, err := b.List(ctx, store.IndexDir)
	if err != nil {
		return "", err
	}
	listed := map[string]bool{}
	var fetch []store.Object
	for _, o := range objs {
		base := strings.TrimPrefix(o.Name, store.IndexDir+"/")
		first, last, ok := segment.ParseName(base)
		if !ok {
			continue
		}
		listed[base] = true
		if want != nil && !want(first, last) {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, base)); err == nil && st.Size() == o.Size {
			now := time.Now()
			os.Chtimes(filepath.Join(dir, base), now, now)
			continue
		}
		fetch = append(fetch, o)
	}
	if cached, err := segment.List(dir); err == nil {
		for _, e := range cached {
			if !listed[e.Name] {
				os.Remove(filepath.Join(dir, e.Name))
			}
		}
	}
	sem := make(chan struct{}, b.S.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, o := range fetch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			buf, err := b.get(ctx, o.Name, 0, o.Size)
			if err != nil {
				b.S.log.Warn("index segment not fetched: its seqs are scanned", "segment", o.Name, "err", err)
				return
			}
			b.Cache.put(o.Name, buf)
		}()
	}
	wg.Wait()
	return dir, nil
}
