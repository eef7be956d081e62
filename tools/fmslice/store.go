package main

// Opening the store a query reads: a local directory (read as always), or
// s3://BUCKET/PREFIX/NODE, a node's store uploaded by fmupload (the same
// names under the prefix), for slices, flows and info. From an object store, the chunks are listed
// once, the index segments of the chunks in the range and each chunk's
// frame and seek tables are read once into a local cache (--cache,
// bounded by --cache-bytes), and only the frames the query needs are
// fetched, with range GETs, neighbours coalesced, several in flight
// (objstore.Backend). Settings of the object store: the standard AWS chain
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_PROFILE, the instance
// role), and the upload: section of --config for what it sets (endpoint,
// region, profile, path_style, access keys).

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/urfave/cli/v2"

	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

// remoteStore is a store on an object store, for one query.
type remoteStore struct {
	b     remoteBackend
	list  []chunk.Info
	files sync.Map // *chunk.Reader → fmstore.File, until prefetch
	// Bucket retention's records, read when first asked for and kept, as
	// the listing is (each read lists retention/ in the bucket): a query
	// asks for them before it counts and again for its notice.
	goneMu   sync.Mutex
	goneRead bool
	gone     []fmstore.Removed
	goneErr  error
}

// remoteBackend is what fmslice asks of an object store's backend
// (objstore.Backend, made in store_s3.go): named here so that a build
// without the S3 client (store_nos3.go) has the same code over it.
type remoteBackend interface {
	fmstore.Backend
	SyncIndex(ctx context.Context, want func(first, last uint64) bool) (string, error)
	ListedSize(name string) int64
	Transfer() (gets, bytes int64)
	FrameTransfer() (gets, bytes, wanted int64)
	String() string
}

// openStore opens the one store fmslice flows or info reads: s3://…
// (listed; remote is nil for a local directory, which is checked).
func openStore(cc *cli.Context, loc string) (remote *remoteStore, err error) {
	if remote, err = openRemote(cc, loc); remote != nil || err != nil {
		return remote, err
	}
	return nil, checkStore(loc)
}

// backendOf is the Backend of a store: the object store's, or the local
// directory.
func backendOf(store string, r *remoteStore) fmstore.Backend {
	if r != nil {
		return r.b
	}
	return fmstore.Local{Dir: store}
}

// removedFrom is what retention removed from a store, local or remote (its
// retention.log, and the records bucket retention put); unreadable: nothing
// removed as far as we know.
func removedFrom(store string, r *remoteStore) []fmstore.Removed {
	gone, _ := retentionRemovals(store, r, false)
	return gone
}

// retentionRemovals reads what retention removed: a directory's log each
// time, an object store's records once, as its listing is read once
// (again when fresh: a chunk gone since the listing may have been removed
// since they were read).
func retentionRemovals(store string, r *remoteStore, fresh bool) ([]fmstore.Removed, error) {
	if r == nil {
		return fmstore.Removals(context.Background(), fmstore.Local{Dir: store})
	}
	r.goneMu.Lock()
	defer r.goneMu.Unlock()
	if fresh || !r.goneRead {
		r.gone, r.goneErr = fmstore.Removals(context.Background(), r.b)
		r.goneRead = true
	}
	return r.gone, r.goneErr
}

// removedThrough is the highest seq bucket retention removed from an
// object store, from its records. Unlike the notice, an answer counted
// from the index needs it: a segment of removed chunks would be counted
// as if they were stored, so records that cannot be read are an error.
func removedThrough(store string, r *remoteStore) (uint64, error) {
	gone, err := retentionRemovals(store, r, false)
	if err != nil {
		return 0, fmt.Errorf("store %s: what bucket retention removed (its records under retention/): %w", store, err)
	}
	var t uint64
	for _, x := range gone {
		t = max(t, x.LastSeq)
	}
	return t, nil
}

// listChunks is a store's chunks: an object store's listing (made once,
// when it was opened), a directory's now.
func listChunks(store string, r *remoteStore) ([]chunk.Info, error) {
	if r != nil {
		return r.list, nil
	}
	return chunk.List(store)
}

// indexDir fetches the segments reaching into the chunks of [from, to)
// into the cache and returns the cache's index directory.
func (r *remoteStore) indexDir(from, to int64) string {
	return r.syncIndex(func(first, last uint64) bool {
		for _, in := range r.list {
			if in.Overlaps(from, to) && in.FirstSeq <= last && first <= in.LastSeq {
				return true
			}
		}
		return false
	})
}

// syncIndex fetches the segments want asks for (nil: every one, as a
// local store's index directory holds) into the cache and returns the
// cache's index directory ("": the range is scanned).
func (r *remoteStore) syncIndex(want func(first, last uint64) bool) string {
	dir, err := r.b.SyncIndex(context.Background(), want)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fmslice: index of %s not read, the range is scanned: %v\n", r.b, err)
		return ""
	}
	return dir
}

// openChunk opens a chunk of q's store, local or remote.
func (q *sliceReq) openChunk(in chunk.Info, dec *zstd.Decoder) (*chunk.Reader, error) {
	if q.remote == nil {
		return chunk.OpenReader(q.store, in, dec)
	}
	rd, f, err := fmstore.OpenChunk(context.Background(), q.remote.b, in, dec)
	if err != nil {
		return nil, err
	}
	q.remote.files.Store(rd, f)
	return rd, nil
}

// prefetch tells an object store which frames of rd will be read.
func (q *sliceReq) prefetch(rd *chunk.Reader, ents []chunk.Frame) {
	if q.remote == nil {
		return
	}
	v, ok := q.remote.files.LoadAndDelete(rd)
	if !ok {
		return
	}
	p, ok := v.(fmstore.Prefetcher)
	if !ok {
		return
	}
	rs := make([]fmstore.Range, len(ents))
	for i, f := range ents {
		rs[i] = fmstore.Range{Off: int64(f.Off), N: int64(f.CSize)}
	}
	p.Prefetch(rs)
}

// transferNotice says, for --explain, what the object store was asked.
func (r *remoteStore) transferNotice() {
	n, b := r.b.Transfer()
	fn, fb, want := r.b.FrameTransfer()
	ratio := 0.0
	if want > 0 {
		ratio = float64(fb) / float64(want)
	}
	fmt.Fprintf(os.Stderr, "plan: object store %s: %d range GETs, %d bytes: %d GETs, %d bytes for chunk tables and index segments; %d GETs, %d bytes for frames holding %d compressed bytes wanted (%.2fx)\n",
		r.b, n, b, n-fn, b-fb, fn, fb, want, ratio)
}

// handoverVar marks a process that a local-only fmslice execed as
// fmslice-s3 (store_nos3.go): found set there, that fmslice-s3 was itself
// a build without the client (a copy, or a link), which would otherwise
// exec itself forever; the full build clears it (store_s3.go).
const handoverVar = "FMSLICE_S3_HANDOVER"
