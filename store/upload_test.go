package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

var quiet = slog.New(slog.DiscardHandler)

// tierStore makes a store of finished chunks (random content of the given
// sizes: the uploader does not read chunks, only copies them), an open
// chunk and a segment.
func tierStore(t *testing.T, sizes ...int) (string, []chunk.Info) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1_767_225_600, 0).UnixNano()
	for i, n := range sizes {
		b := make([]byte, n)
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		first := uint64(i*100 + 1)
		name := chunk.FinalName(first, first+99, base+int64(i)*1e9, base+int64(i)*1e9+5, true)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	open := ".open-" + strings.Repeat("0", 17) + "901.pcap.zst"
	if err := os.WriteFile(filepath.Join(dir, open), []byte("being written"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := fsmode.MkdirAll(Index(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(Index(dir), segment.FileName(1, 150)), []byte("segment"), 0o640); err != nil {
		t.Fatal(err)
	}
	list, err := chunk.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, list
}

// failing is a Local backend whose Put fails for names holding bad.
type failing struct {
	Backend
	bad string
}

func (f failing) Put(ctx context.Context, name string, r io.Reader, size int64) (Object, error) {
	if f.bad != "" && strings.Contains(name, f.bad) {
		return Object{}, os.ErrDeadlineExceeded
	}
	return f.Backend.Put(ctx, name, r, size)
}

// The uploader copies the finished chunks and the segments, never the open
// chunk; the mark moves only over a done prefix of the backlog (a failed
// chunk holds it back even when later ones went); retention of a tiered
// store removes only what the mark covers.
func TestUploaderMarkAndRetention(t *testing.T) {
	dir, list := tierStore(t, 3000, 4000, 5000)
	remote := t.TempDir()
	if err := WriteUploaded(dir, 0, remote); err != nil {
		t.Fatal(err)
	}
	r := &Retention{Dir: dir, MaxBytes: 1, Log: quiet}
	if n, err := r.Enforce(time.Now(), false); err != nil || n != 0 {
		t.Fatalf("retention of a tiered store with nothing uploaded removed %d (%v), want 0", n, err)
	}

	// The second chunk fails: the mark stays at the first.
	u := &Uploader{Dir: dir, Remote: failing{Local{remote}, list[1].Name}, Parallel: 2, Log: quiet}
	if err := u.Pass(context.Background()); err == nil {
		t.Fatal("Pass with a failing Put: no error")
	}
	if through, _, _ := ReadUploaded(dir); through != list[0].LastSeq {
		t.Fatalf("mark through %d after chunk 2 failed, want %d", through, list[0].LastSeq)
	}
	if n, err := r.Enforce(time.Now(), false); err != nil || n != 1 {
		t.Fatalf("retention removed %d (%v), want 1 (the uploaded chunk)", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, list[1].Name)); err != nil {
		t.Fatalf("chunk not uploaded removed: %v", err)
	}

	// Again, working: everything goes, once.
	u = &Uploader{Dir: dir, Remote: Local{remote}, Log: quiet}
	if err := u.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := u.Stats()
	if st.Through != list[2].LastSeq || st.BacklogChunks != 0 || st.BacklogBytes != 0 {
		t.Errorf("stats %+v: want through %d, no backlog", st, list[2].LastSeq)
	}
	objs, err := Local{remote}.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	if want := []string{list[0].Name, list[1].Name, list[2].Name}; !slices.Equal(names, want) {
		t.Errorf("remote holds %q, want %q", names, want)
	}
	for _, in := range list[1:3] {
		a, _ := os.ReadFile(filepath.Join(dir, in.Name))
		b, _ := os.ReadFile(filepath.Join(remote, in.Name))
		if sha256.Sum256(a) != sha256.Sum256(b) {
			t.Errorf("%s: remote copy differs", in.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(remote, IndexDir, segment.FileName(1, 150))); err != nil {
		t.Errorf("segment not uploaded: %v", err)
	}
	if n, err := r.Enforce(time.Now(), false); err != nil || n != 2 || r.LostToTier() != 0 {
		t.Fatalf("retention removed %d (%v, %d lost), want 2, none lost", n, err, r.LostToTier())
	}
}

// A full disk removes the oldest chunk even when it is not uploaded: the
// loss is counted, and the uploader counts the chunk lost, not failed.
func TestTierFullDiskLoss(t *testing.T) {
	dir, list := tierStore(t, 100, 100)
	if err := WriteUploaded(dir, 0, "x"); err != nil {
		t.Fatal(err)
	}
	r := &Retention{Dir: dir, MaxBytes: 1, Log: quiet}
	if n, err := r.Enforce(time.Now(), true); err != nil || n != 1 || r.LostToTier() != 1 {
		t.Fatalf("full disk: removed %d (%v), lost %d; want 1 and 1", n, err, r.LostToTier())
	}
	u := &Uploader{Dir: dir, Remote: Local{t.TempDir()}, Log: quiet}
	if err := u.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if through, _, _ := ReadUploaded(dir); through != list[1].LastSeq {
		t.Errorf("mark %d, want %d", through, list[1].LastSeq)
	}
}

// A file already in the remote store with the same size but other content
// (a torn copy by another tool) is replaced; one with the same content is
// kept as is.
func TestUploaderReplacesWrongCopy(t *testing.T) {
	dir, list := tierStore(t, 2000)
	remote := t.TempDir()
	if err := os.WriteFile(filepath.Join(remote, list[0].Name), make([]byte, 2000), 0o640); err != nil {
		t.Fatal(err)
	}
	u := &Uploader{Dir: dir, Remote: crcLocal{Local{remote}}, Log: quiet}
	if err := u.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, list[0].Name))
	b, _ := os.ReadFile(filepath.Join(remote, list[0].Name))
	if !bytes.Equal(a, b) {
		t.Error("a wrong remote copy of the same size was kept")
	}
}

// crcLocal is a Local backend whose Stat gives the CRC-32C, as S3's does.
type crcLocal struct{ Backend }

func (c crcLocal) Stat(ctx context.Context, name string) (Object, error) {
	o, err := c.Backend.Stat(ctx, name)
	if err != nil {
		return o, err
	}
	f, err := os.Open(filepath.Join(c.Backend.Local(), name))
	if err != nil {
		return o, err
	}
	defer f.Close()
	o.CRC32C, err = CRC32C(f)
	return o, err
}

func TestLocalBackend(t *testing.T) {
	ctx := context.Background()
	l := Local{t.TempDir()}
	if _, err := l.Put(ctx, "index/seg-1-2.fmix", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "../escape", strings.NewReader("x"), 1); err == nil {
		t.Error("Put ../escape: no error")
	}
	st, err := os.Stat(filepath.Join(l.Dir, "index", "seg-1-2.fmix"))
	if err != nil || st.Mode().Perm() != fsmode.File {
		t.Fatalf("put file: %v, mode %v, want %v", err, st.Mode().Perm(), fsmode.File)
	}
	objs, err := l.List(ctx, IndexDir)
	if err != nil || len(objs) != 1 || objs[0].Name != "index/seg-1-2.fmix" || objs[0].Size != 3 {
		t.Fatalf("List: %+v %v", objs, err)
	}
	if objs, err := l.List(ctx, "nothing"); err != nil || len(objs) != 0 {
		t.Errorf("List of a missing dir: %v %v, want nothing", objs, err)
	}
	f, err := l.Open(ctx, "index/seg-1-2.fmix")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	if _, err := f.ReadAt(b, 1); err != nil || string(b) != "bc" || f.Size() != 3 {
		t.Errorf("ReadAt: %q %v size %d", b, err, f.Size())
	}
	f.Close()
	if err := l.Delete(ctx, "index/seg-1-2.fmix"); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "index/seg-1-2.fmix"); err != nil {
		t.Errorf("Delete of a missing name: %v", err)
	}
	if _, err := l.Stat(ctx, "index/seg-1-2.fmix"); !os.IsNotExist(err) {
		t.Errorf("Stat after Delete: %v, want not-exist", err)
	}
}

func TestReadUploaded(t *testing.T) {
	dir := t.TempDir()
	if _, tiered, err := ReadUploaded(dir); tiered || err != nil {
		t.Fatalf("no mark: tiered %v, %v", tiered, err)
	}
	if err := WriteUploaded(dir, 12345, "s3://b/p/n/"); err != nil {
		t.Fatal(err)
	}
	if through, tiered, err := ReadUploaded(dir); through != 12345 || !tiered || err != nil {
		t.Fatalf("got %d %v %v, want 12345 true nil", through, tiered, err)
	}
	os.WriteFile(filepath.Join(dir, UploadedMark), []byte("garbage\n"), 0o640)
	if _, tiered, err := ReadUploaded(dir); !tiered || err == nil || !strings.Contains(err.Error(), UploadedMark) {
		t.Errorf("garbage mark: tiered %v, err %v; want tiered and an error naming the file", tiered, err)
	}
}

// FuzzReadUploaded: any mark file gives a value or an error, never a panic.
func FuzzReadUploaded(f *testing.F) {
	f.Add([]byte("fmcap-uploaded 1\nthrough 42\nto s3://b/p/\n"))
	f.Add([]byte("fmcap-uploaded 1\nthrough -1\n"))
	f.Add([]byte(""))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, UploadedMark), b, 0o640); err != nil {
			t.Fatal(err)
		}
		through, tiered, err := ReadUploaded(dir)
		if !tiered || err != nil && through != 0 {
			t.Fatalf("got %d %v %v", through, tiered, err)
		}
	})
}

// remoteOnly is a backend read as an object store is (not as a local
// directory): OpenChunk opens its objects.
type remoteOnly struct{ Backend }

func (remoteOnly) Local() string { return "" }

// TestUploadUncompressedMeta: an uncompressed chunk goes up with its frame
// table and metadata sidecar, and reads back from the object store with
// its packets' metadata; one written before sidecars goes up without one
// (not lost) and reads back with its origin unknown.
func TestUploadUncompressedMeta(t *testing.T) {
	dir, remote := t.TempDir(), t.TempDir()
	for i, withMeta := range []bool{true, false} {
		first := uint64(i*10 + 1)
		w, err := chunk.Create(dir, first, false, 7)
		if err != nil {
			t.Fatal(err)
		}
		raw := chunk.PcapHeader()
		var mb chunk.MetaBuilder
		for k := 0; k < 10; k++ {
			raw, _ = chunk.AppendPacket(raw, int64(first+uint64(k))*1e9, 60, make([]byte, 60))
			mb.Add(uint16(k%2), 1, 3, 0, nil)
		}
		f := chunk.Frame{FirstSeq: first, LastSeq: first + 9, Count: 10, MinTS: int64(first) * 1e9, MaxTS: int64(first+9) * 1e9, DSize: uint32(len(raw)), Sum: chunk.Sum(raw)}
		var ms [][]byte
		if withMeta {
			ms = [][]byte{mb.AppendFrame(nil)}
		}
		if err := w.AppendBatchMeta([][]byte{raw}, ms, []chunk.Frame{f}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Finalize(); err != nil {
			t.Fatal(err)
		}
		if !withMeta {
			os.Remove(filepath.Join(dir, fmt.Sprintf("chunk-%020d.fmpm", first)))
		}
	}
	list, _ := chunk.List(dir)
	if err := WriteUploaded(dir, 0, remote); err != nil {
		t.Fatal(err)
	}
	u := &Uploader{Dir: dir, Remote: Local{remote}, Log: quiet}
	if err := u.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := u.Stats(); st.Lost != 0 || st.Through != list[1].LastSeq {
		t.Fatalf("stats %+v: want none lost, through %d", st, list[1].LastSeq)
	}
	objs, _ := Local{remote}.List(context.Background(), "")
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	want := append(list[0].Files(), list[1].Files()[:2]...)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("remote holds %q, want %q", names, want)
	}
	dec := chunk.NewDecoder()
	for i, in := range list {
		rd, f, err := OpenChunk(context.Background(), remoteOnly{Local{remote}}, in, dec)
		if err != nil || f == nil {
			t.Fatalf("%s: %v (object %v)", in.Name, err, f)
		}
		fr, _ := rd.Frame(0)
		_, meta, _, err := rd.AppendFrameMeta(0, fr, nil, nil)
		var m chunk.Meta
		if err != nil || (i == 0) != (meta != nil) || meta != nil && (m.Parse(meta) != nil || m.Count() != 10) {
			t.Errorf("%s: metadata %d bytes (%v), want it: %v", in.Name, len(meta), err, i == 0)
		}
		rd.Close()
		f.Close()
	}
}
