package store

// # Backends
//
// A store's files live in a local directory (Local) or under a prefix of
// an S3-compatible bucket (objstore.Backend, s3://BUCKET/PREFIX/NODE/),
// with the same names: chunk-F-L-A-B.pcap.zst, its frame table where it
// has one, index/seg-*. Backend is what the readers (fmslice) and the
// uploader need of either: list a directory of the store, stat, open for
// range reads, put, delete. Names are slash-separated and relative to the
// store's root ("chunk-…", "index/seg-…").
//
// A Backend's File may also implement Prefetcher: told which byte ranges
// are about to be read, an object store's file fetches them coalesced and
// several at a time instead of one request a read.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/fsmode"
)

// Object is one file of a store.
type Object struct {
	Name    string // relative to the store's root, slash-separated
	Size    int64
	ModTime time.Time
	// CRC32C is the content's CRC-32C as S3 gives it (base64 of its four
	// big-endian bytes; see CRC32C), "" when the backend does not say.
	CRC32C string
}

// CRC32C is the CRC-32C (Castagnoli) of r's content in S3's notation, to
// compare with Object.CRC32C.
func CRC32C(r io.Reader) (string, error) {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// File is an opened object, read at offsets.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Range is n bytes from offset Off.
type Range struct{ Off, N int64 }

// Prefetcher is a File told in advance which ranges will be read (in that
// order, roughly): reads of them are then served from fetched bytes.
type Prefetcher interface {
	Prefetch(ranges []Range)
}

// Backend holds a store's files. A missing object is an error for which
// errors.Is(err, fs.ErrNotExist) holds, on every backend.
type Backend interface {
	// List returns the objects directly in dir ("" is the store's root,
	// IndexDir its index), sorted by name; a missing dir is no objects.
	// Hidden names (a leading dot: files being written) are left out.
	List(ctx context.Context, dir string) ([]Object, error)
	Stat(ctx context.Context, name string) (Object, error)
	Open(ctx context.Context, name string) (File, error)
	// Put stores exactly size bytes of r as name, all at once: a reader
	// sees the whole object or none.
	Put(ctx context.Context, name string, r io.Reader, size int64) (Object, error)
	// Delete removes name; removing a missing name is not an error.
	Delete(ctx context.Context, name string) error
	// Local is the store's directory when the backend is one, else "".
	Local() string
	String() string
}

// Local is a store in a local directory, the writer's layout unchanged.
type Local struct{ Dir string }

var _ Backend = Local{}

func (l Local) path(name string) (string, error) {
	if name == "" || path.IsAbs(name) || strings.Contains("/"+name+"/", "/../") {
		return "", fmt.Errorf("store %s: bad name %q", l.Dir, name)
	}
	return filepath.Join(l.Dir, filepath.FromSlash(name)), nil
}

// List lists the regular files directly in dir.
func (l Local) List(_ context.Context, dir string) ([]Object, error) {
	p := l.Dir
	if dir != "" {
		var err error
		if p, err = l.path(dir); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) && dir != "" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p, err)
	}
	var out []Object
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		out = append(out, Object{Name: path.Join(dir, e.Name()), Size: info.Size(), ModTime: info.ModTime()})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

func (l Local) Stat(_ context.Context, name string) (Object, error) {
	p, err := l.path(name)
	if err != nil {
		return Object{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return Object{}, err
	}
	return Object{Name: name, Size: st.Size(), ModTime: st.ModTime()}, nil
}

type localFile struct {
	*os.File
	size int64
}

func (f localFile) Size() int64 { return f.size }

func (l Local) Open(_ context.Context, name string) (File, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return localFile{f, st.Size()}, nil
}

// Put writes the object with atomicfile (hidden temporary file, fsync,
// rename, directory fsync), mode 0640.
func (l Local) Put(_ context.Context, name string, r io.Reader, size int64) (Object, error) {
	p, err := l.path(name)
	if err != nil {
		return Object{}, err
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return Object{}, fmt.Errorf("put %s: read %d bytes: %w", p, size, err)
	}
	if err := fsmode.MkdirAll(filepath.Dir(p)); err != nil {
		return Object{}, err
	}
	if err := atomicfile.Write(p, b, atomicfile.Options{Mode: fsmode.File}); err != nil {
		return Object{}, err
	}
	return Object{Name: name, Size: size, ModTime: time.Now()}, nil
}

func (l Local) Delete(_ context.Context, name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (l Local) Local() string  { return l.Dir }
func (l Local) String() string { return l.Dir }
