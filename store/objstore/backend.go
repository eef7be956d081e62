package objstore

// Backend: a store under s3://BUCKET/PREFIX/NODE/, as store.Backend. What
// a query reads more than once, or reads whole, is kept in a local cache
// (Cache): the tail of each chunk (its frame table and seek table, read
// with one or two range GETs from the end), the index segments and the
// records of bucket retention (retention/…). Frames
// are read with range GETs: a File told which frames will be read
// (store.Prefetcher) groups them into spans (neighbours less than MaxGap
// and less than half the next frame apart read together, so that at most
// 1.5x the frames' bytes are read; a span at most MaxSpan), fetches Concurrency spans
// at once and the next group ahead, and keeps at most three groups.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/store"
)

const (
	// MaxGap: frames less than this apart are read with one GET (a GET
	// costs about as much as tens of KiB of transfer).
	MaxGap = 32 << 10
	// MaxSpan is the most one GET of frames reads.
	MaxSpan = 2 << 20
	// tailGuess is the first read of a chunk's end: the tables of a chunk
	// of up to ~800 frames, in one GET.
	tailGuess = 64 << 10
)

// ParseURL reads s3://BUCKET/PREFIX into cfg's Bucket and Prefix. ok is
// false for a string that is not an s3:// URL (a local directory).
func ParseURL(s string, cfg Config) (Config, bool, error) {
	if !strings.HasPrefix(s, "s3://") {
		return cfg, false, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return cfg, true, fmt.Errorf("store %q: want s3://BUCKET/PREFIX", s)
	}
	cfg.Bucket = u.Host
	cfg.Prefix = strings.Trim(u.Path, "/")
	return cfg, true, nil
}

// Backend is a store on an object store. Its methods are safe for
// concurrent use.
type Backend struct {
	S     *Store
	Cache *Cache // nil: nothing cached on disk
	ctx   context.Context

	sizes sync.Map // name → int64, from listings: Open needs no HEAD

	requests, bytes atomic.Int64 // GETs made, and their bytes
	// The part of them that read frames, and the compressed bytes of the
	// frames a reader announced (Prefetch): coalescing reads gaps too.
	frameRequests, frameBytes, wantedBytes atomic.Int64
}

var _ store.Backend = (*Backend)(nil)

// NewBackend is the store at cfg's bucket and prefix. cache may be nil.
func NewBackend(ctx context.Context, cfg Config, cache *Cache, log *slog.Logger) (*Backend, error) {
	s, err := New(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return &Backend{S: s, Cache: cache, ctx: context.WithoutCancel(ctx)}, nil
}

// Transfer is the GETs made so far and the bytes they read.
func (b *Backend) Transfer() (requests, bytes int64) { return b.requests.Load(), b.bytes.Load() }

// FrameTransfer is the part of Transfer that read frames (the rest read
// chunk tables and index segments), and the compressed bytes of the frames
// announced with Prefetch.
func (b *Backend) FrameTransfer() (requests, bytes, wanted int64) {
	return b.frameRequests.Load(), b.frameBytes.Load(), b.wantedBytes.Load()
}

func (b *Backend) String() string { return b.S.where("") }
func (b *Backend) Local() string  { return "" }

func notExist(err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// List lists the objects directly under dir.
func (b *Backend) List(ctx context.Context, dir string) ([]store.Object, error) {
	pfx := ""
	if dir != "" {
		pfx = strings.TrimSuffix(dir, "/") + "/"
	}
	infos, err := b.S.List(ctx, pfx)
	if err != nil {
		return nil, err
	}
	var out []store.Object
	for _, in := range infos {
		rest := strings.TrimPrefix(in.Key, pfx)
		if rest == "" || strings.Contains(rest, "/") || strings.HasPrefix(rest, ".") {
			continue
		}
		b.sizes.Store(in.Key, in.Size)
		out = append(out, store.Object{Name: in.Key, Size: in.Size, ModTime: in.ModTime})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListedSize is name's size as the last listing of its directory gave it
// (0: not listed): what a store's objects take, without a HEAD each.
func (b *Backend) ListedSize(name string) int64 {
	if v, ok := b.sizes.Load(name); ok {
		return v.(int64)
	}
	return 0
}

func (b *Backend) Stat(ctx context.Context, name string) (store.Object, error) {
	in, err := b.S.Stat(ctx, name)
	if err != nil {
		return store.Object{}, notExist(err)
	}
	return store.Object{Name: name, Size: in.Size, ModTime: in.ModTime, CRC32C: in.CRC32C}, nil
}

func (b *Backend) Put(ctx context.Context, name string, r io.Reader, size int64) (store.Object, error) {
	in, err := b.S.Put(ctx, name, r, size)
	if err != nil {
		return store.Object{}, err
	}
	return store.Object{Name: name, Size: in.Size, ModTime: in.ModTime, CRC32C: in.CRC32C}, nil
}

func (b *Backend) Delete(ctx context.Context, name string) error { return b.S.Delete(ctx, name) }

// getTimeout bounds one range GET (at most MaxSpan, or a segment): a
// server that stops answering fails the read instead of hanging the query.
const getTimeout = 2 * time.Minute

func (b *Backend) get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	buf, err := b.S.GetRange(ctx, key, off, n)
	b.requests.Add(1)
	if err != nil {
		return nil, notExist(err)
	}
	b.bytes.Add(int64(len(buf)))
	return buf, nil
}

// Open opens name for range reads. A finished compressed chunk's tables
// (its tail) are read at once, from the cache when it has them.
func (b *Backend) Open(ctx context.Context, name string) (store.File, error) {
	var size int64
	if v, ok := b.sizes.Load(name); ok {
		size = v.(int64)
	} else {
		st, err := b.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		size = st.Size
	}
	f := &remoteFile{b: b, key: name, size: size, tailOff: size, groups: map[int]*group{}}
	if strings.HasSuffix(name, ".pcap.zst") {
		if err := f.readTail(ctx); err != nil {
			return nil, err
		}
	} else if strings.HasPrefix(name, store.RetentionDir+"/") && size > 0 {
		if err := f.readRecord(ctx); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// readRecord reads a retention record (store.RecordRemoved) whole, from
// the cache when it holds it: every query reads every record, and a
// record, once put, stays as it is (one written again by an interrupted
// bucket retention differs in its removal time alone: the cache may keep
// the first).
func (f *remoteFile) readRecord(ctx context.Context) error {
	cacheName := f.key + "@" + strconv.FormatInt(f.size, 10)
	b, ok := f.b.Cache.get(cacheName)
	if !ok || int64(len(b)) != f.size {
		var err error
		if b, err = f.b.get(ctx, f.key, 0, f.size); err != nil {
			return err
		}
		f.b.Cache.put(cacheName, b)
	}
	f.tail, f.tailOff = b, 0
	return nil
}

// remoteFile is one object read by ranges.
type remoteFile struct {
	b       *Backend
	key     string
	size    int64
	tailOff int64  // the tail holds bytes tailOff..size
	tail    []byte // the chunk's tables (nil when not a chunk or not found)

	mu     sync.Mutex
	spans  []span         // Prefetch's ranges, coalesced, by offset
	groups map[int]*group // spans fetched together: group g is spans g*conc..
}

type span struct{ off, end int64 }

type group struct {
	done chan struct{}
	data [][]byte
	err  error
}

func (f *remoteFile) Size() int64 { return f.size }

// Close drops the fetched bytes.
func (f *remoteFile) Close() error {
	f.mu.Lock()
	f.spans, f.groups, f.tail = nil, map[int]*group{}, nil
	f.tailOff = f.size
	f.mu.Unlock()
	return nil
}

// readTail fetches the chunk's frame table and seek table: the seek
// table's footer says how many frames there are, hence how long both
// tables are (seekable format: 12-byte entries and a 9-byte footer; frame
// table: 32-byte header and 64-byte entries; each in a skippable frame
// with an 8-byte header). A tail that does not parse is left to the chunk
// reader, which reads what it needs by ranges and says what it repaired.
func (f *remoteFile) readTail(ctx context.Context) error {
	cacheName := "tails/" + f.key + "@" + strconv.FormatInt(f.size, 10)
	if b, ok := f.b.Cache.get(cacheName); ok && int64(len(b)) <= f.size {
		f.tail, f.tailOff = b, f.size-int64(len(b))
		return nil
	}
	n := min(f.size, tailGuess)
	buf, err := f.b.get(ctx, f.key, f.size-n, n)
	if err != nil {
		return err
	}
	need, ok := tailLen(buf, f.size)
	if !ok {
		return nil
	}
	if need > n {
		more, err := f.b.get(ctx, f.key, f.size-need, need-n)
		if err != nil {
			return err
		}
		buf = append(more, buf...)
	} else {
		buf = buf[n-need:]
	}
	f.tail, f.tailOff = buf, f.size-int64(len(buf))
	f.b.Cache.put(cacheName, buf)
	return nil
}

// tailLen reads, from end (the last bytes of an object of size bytes),
// how many bytes at the end the frame table and the seek table take; ok
// is false when end does not end with a seek table or the tables would not
// fit in the object.
func tailLen(end []byte, size int64) (need int64, ok bool) {
	n := len(end)
	if n < 9 || binary.LittleEndian.Uint32(end[n-4:]) != 0x8F92EAB1 {
		return 0, false
	}
	frames := int64(binary.LittleEndian.Uint32(end[n-9:]))
	need = 8 + frames*12 + 9 + 8 + 32 + frames*64
	return need, need <= size
}

// Prefetch says which ranges the reader will read next, replacing what it
// said before.
func (f *remoteFile) Prefetch(ranges []store.Range) {
	rs := make([]store.Range, 0, len(ranges))
	for _, r := range ranges {
		if r.N > 0 && r.Off+r.N <= f.tailOff {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Off < rs[j].Off })
	for _, r := range rs {
		f.b.wantedBytes.Add(r.N)
	}
	var spans []span
	for _, r := range rs {
		// A gap is read only when under MaxGap and under half the frame
		// after it: the bytes fetched stay within 1.5x of those wanted.
		if k := len(spans) - 1; k >= 0 && r.Off <= spans[k].end+min(MaxGap, r.N/2) && r.Off+r.N-spans[k].off <= MaxSpan {
			spans[k].end = max(spans[k].end, r.Off+r.N)
			continue
		}
		spans = append(spans, span{r.Off, r.Off + r.N})
	}
	f.mu.Lock()
	f.spans, f.groups = spans, map[int]*group{}
	f.mu.Unlock()
}

func (f *remoteFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("objstore: read %s at %d: negative offset", f.key, off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := p
	if off+int64(len(p)) > f.size {
		want = p[:f.size-off]
	}
	end := off + int64(len(want))
	f.mu.Lock()
	tail, tailOff := f.tail, f.tailOff
	f.mu.Unlock()
	switch {
	case tail != nil && off >= tailOff:
		copy(want, tail[off-tailOff:])
	default:
		if b, ok, err := f.fromSpans(off, end); ok {
			if err != nil {
				return 0, err
			}
			copy(want, b)
		} else {
			b, err := f.b.get(f.b.ctx, f.key, off, int64(len(want)))
			if err != nil {
				return 0, err
			}
			f.b.frameRequests.Add(1)
			f.b.frameBytes.Add(int64(len(b)))
			copy(want, b)
		}
	}
	if len(want) < len(p) {
		return len(want), io.EOF
	}
	return len(p), nil
}

// fromSpans serves off..end from the prefetched spans; ok is false when no
// span holds it.
func (f *remoteFile) fromSpans(off, end int64) ([]byte, bool, error) {
	f.mu.Lock()
	i := sort.Search(len(f.spans), func(i int) bool { return f.spans[i].end >= end })
	if i == len(f.spans) || f.spans[i].off > off {
		f.mu.Unlock()
		return nil, false, nil
	}
	conc := f.b.S.cfg.Concurrency
	g := i / conc
	grp := f.start(g, conc)
	if (g+1)*conc < len(f.spans) {
		f.start(g+1, conc) // ahead
	}
	for k := range f.groups {
		if k < g-1 {
			delete(f.groups, k)
		}
	}
	sp := f.spans[i]
	f.mu.Unlock()
	<-grp.done
	if grp.err != nil {
		return nil, true, grp.err
	}
	return grp.data[i-g*conc][off-sp.off : end-sp.off], true, nil
}

// start begins fetching group g (f.mu held) and returns it.
func (f *remoteFile) start(g, conc int) *group {
	if grp := f.groups[g]; grp != nil {
		return grp
	}
	lo, hi := g*conc, min((g+1)*conc, len(f.spans))
	spans := f.spans[lo:hi]
	grp := &group{done: make(chan struct{}), data: make([][]byte, len(spans))}
	f.groups[g] = grp
	go func() {
		defer close(grp.done)
		var wg sync.WaitGroup
		var once sync.Once
		for k, sp := range spans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := f.b.get(f.b.ctx, f.key, sp.off, sp.end-sp.off)
				if err != nil {
					once.Do(func() { grp.err = err })
					return
				}
				f.b.frameRequests.Add(1)
				f.b.frameBytes.Add(int64(len(b)))
				grp.data[k] = b
			}()
		}
		wg.Wait()
	}()
	return grp
}
