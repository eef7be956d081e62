package store

// Reading a store through its Backend: the chunks by name, a chunk's
// frames through its frame table. A local store is read exactly as before
// (chunk.List, chunk.OpenReader: open chunks included); another backend
// through chunk.NewReader on the object's File, whose frame and seek
// tables sit at the end of a finished chunk.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"github.com/klauspost/compress/zstd"

	"github.com/fmcap/fmcap/store/chunk"
)

// ListChunks returns the store's chunks in seq order (a local store's open
// chunk too; an object store holds finished chunks only).
func ListChunks(ctx context.Context, b Backend) ([]chunk.Info, error) {
	if dir := b.Local(); dir != "" {
		return chunk.List(dir)
	}
	objs, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list store %s: %w", b, err)
	}
	var out []chunk.Info
	for _, o := range objs {
		if in, ok := chunk.ParseName(o.Name); ok && !in.Open {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(a, c int) bool { return out[a].FirstSeq < out[c].FirstSeq })
	return out, nil
}

// OpenChunk opens chunk in of b for reading its frames. f is the object
// under it (nil for a local store, read as before); the Reader's Close
// does not close f: the caller does, when it is done with the Reader.
func OpenChunk(ctx context.Context, b Backend, in chunk.Info, dec *zstd.Decoder) (rd *chunk.Reader, f File, err error) {
	if dir := b.Local(); dir != "" {
		rd, err = chunk.OpenReader(dir, in, dec)
		return rd, nil, err
	}
	var side, meta []byte
	if !in.Zstd {
		// An uncompressed chunk's frame table and metadata sidecar are
		// objects of their own, uploaded before the chunk (the sidecar
		// first, so that it holds every entry's metadata).
		if side, err = readObject(ctx, b, in.Files()[1]); err != nil {
			return nil, nil, fmt.Errorf("chunk %q: frame table: %w", in.Name, err)
		}
		if meta, err = readObject(ctx, b, in.MetaFile()); err != nil {
			return nil, nil, fmt.Errorf("chunk %q: metadata sidecar: %w", in.Name, err)
		}
	}
	f, err = b.Open(ctx, in.Name)
	if err != nil {
		return nil, nil, err
	}
	rd, err = chunk.NewReader(in, f, f.Size(), side, dec)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("chunk %q: %w", in.Name, err)
	}
	rd.SetMeta(meta)
	return rd, f, nil
}

// readObject is the whole object name of b, nil when there is none.
func readObject(ctx context.Context, b Backend, name string) ([]byte, error) {
	f, err := b.Open(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, f.Size())
	if _, err = f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}
