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
	var side []byte
	if !in.Zstd {
		// An uncompressed chunk's frame table is an object of its own,
		// uploaded before the chunk.
		name := in.Files()[1]
		tf, err := b.Open(ctx, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("chunk %q: frame table: %w", in.Name, err)
		}
		if err == nil {
			side = make([]byte, tf.Size())
			_, err = tf.ReadAt(side, 0)
			tf.Close()
			if err != nil && err != io.EOF {
				return nil, nil, fmt.Errorf("chunk %q: frame table: %w", in.Name, err)
			}
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
	return rd, f, nil
}
