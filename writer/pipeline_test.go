package writer

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/shmring"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

func testConfig(t *testing.T, ring, store string) *Config {
	return &Config{
		Ring: ring, Consumer: "writer", Store: store, Compress: true, Level: 1,
		FrameSize: 64 << 10, FlushInterval: 20 * time.Millisecond, ChunkSize: 1 << 20, ChunkAge: time.Hour,
		Workers: 2, ExitOnClose: true,
	}
}

func newTestRing(t *testing.T, size uint64, firstSeq uint64) string {
	path := filepath.Join(t.TempDir(), "ring")
	if err := shmring.Create(path, shmring.Config{DataSize: size, MaxCaplen: 2048, FirstSeq: firstSeq,
		Consumers: []shmring.ConsumerSpec{{Name: "writer", Mode: shmring.Lossless}}}); err != nil {
		t.Fatal(err)
	}
	return path
}

// produce writes packets from..to-1 of testpkt into the ring (blocking).
func produce(t *testing.T, path string, from, to int, close bool) {
	producePackets(t, path, from, to, close, testpkt.Packet, 256)
}

// producePackets writes packets pkt(from..to-1) into the ring (blocking),
// each built in a buffer of bufSize bytes; packet i at time i µs after
// testpkt.Base. Errors are t.Error: it may run in its own goroutine.
func producePackets(t *testing.T, path string, from, to int, close bool, pkt func(i int, buf []byte) []byte, bufSize int) {
	r, err := shmring.Open(path)
	if err != nil {
		t.Error(err)
		return
	}
	defer r.Close()
	p, err := r.NewProducer(shmring.Blocking)
	if err != nil {
		t.Error(err)
		return
	}
	buf := make([]byte, bufSize)
	for i := from; i < to; i++ {
		d := pkt(i, buf)
		if _, ok := p.Write(testpkt.Base+int64(i)*1000, uint32(len(d)), 0, shmring.DirIngress, 0, d); !ok {
			t.Error("write aborted")
			return
		}
		if i%64 == 0 {
			p.Publish()
		}
	}
	if close {
		p.Close()
	} else {
		p.Detach()
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestPipeline runs the writer in-process (so -race sees all of its stages)
// against a producer goroutine, in both storage modes.
func TestPipeline(t *testing.T) {
	for _, compress := range []bool{true, false} {
		ring := newTestRing(t, 1<<20, 1)
		store := filepath.Join(t.TempDir(), "store")
		cfg := testConfig(t, ring, store)
		cfg.Compress = compress
		const n = 100_000
		go produce(t, ring, 0, n, true)
		if err := Run(context.Background(), cfg, quiet); err != nil {
			t.Fatal(err)
		}
		if err := testpkt.CheckStore(store, n); err != nil {
			t.Fatalf("compress=%v: %v", compress, err)
		}
	}
}

// TestFramesCutAtSeqGroups: with the packets already in the ring (no cut by
// time), every frame but a chunk's first starts at a multiple of
// chunk.SeqGroup, and frames stay between half the frame size and the
// largest the writer grows a frame of such compressible packets to (plus
// the group that overran its estimate).
func TestFramesCutAtSeqGroups(t *testing.T) {
	ring := newTestRing(t, 1<<24, 1)
	store := filepath.Join(t.TempDir(), "store")
	const n = 40_000
	produce(t, ring, 0, n, true)
	cfg := testConfig(t, ring, store)
	cfg.FrameSize = 32 << 10 // several groups of these small packets a frame
	if err := Run(context.Background(), cfg, quiet); err != nil {
		t.Fatal(err)
	}
	if err := testpkt.CheckStore(store, n); err != nil {
		t.Fatal(err)
	}
	list, _ := chunk.List(store)
	frames := 0
	for _, in := range list {
		rd, err := chunk.OpenReader(store, in, chunk.NewDecoder())
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range rd.Table.Frames {
			frames++
			if i > 0 && f.FirstSeq%chunk.SeqGroup != 0 {
				t.Errorf("chunk %s frame %d starts at seq %d", in.Name, i, f.FirstSeq)
			}
			if i < len(rd.Table.Frames)-1 && (f.DSize < uint32(cfg.FrameSize/2) || f.DSize > uint32(growMax*cfg.FrameSize+chunk.SeqGroup*(16+200))) {
				t.Errorf("chunk %s frame %d holds %d bytes", in.Name, i, f.DSize)
			}
		}
		rd.Close()
	}
	if frames < 50 {
		t.Fatalf("only %d frames", frames)
	}
}

// TestStopDrains: cancelling (SIGTERM) stores what the ring holds, finalizes
// and returns; a later run continues exactly where it stopped.
func TestStopDrains(t *testing.T) {
	ring := newTestRing(t, 1<<22, 1)
	store := filepath.Join(t.TempDir(), "store")
	produce(t, ring, 0, 5000, false)
	cfg := testConfig(t, ring, store)
	cfg.ExitOnClose = false
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := testpkt.CheckStore(store, 5000); err != nil {
		t.Fatal(err)
	}
	produce(t, ring, 5000, 9000, true)
	cfg.ExitOnClose = true
	if err := Run(context.Background(), cfg, quiet); err != nil {
		t.Fatal(err)
	}
	if err := testpkt.CheckStore(store, 9000); err != nil {
		t.Fatal(err)
	}
}

// TestForeignRingRefused: a store filled from one ring is not silently
// skipped over by a new ring whose seqs overlap it.
func TestForeignRingRefused(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	ring := newTestRing(t, 1<<20, 1)
	produce(t, ring, 0, 100, true)
	if err := Run(context.Background(), testConfig(t, ring, store), quiet); err != nil {
		t.Fatal(err)
	}
	other := newTestRing(t, 1<<20, 1)
	produce(t, other, 0, 10, true)
	err := Run(context.Background(), testConfig(t, other, store), quiet)
	if err == nil || !strings.Contains(err.Error(), "--first-seq 101") {
		t.Fatalf("got %v, want advice to use --first-seq 101", err)
	}
	// With the numbering continued, it is accepted.
	next := newTestRing(t, 1<<20, 101)
	go produce(t, next, 100, 300, true)
	if err := Run(context.Background(), testConfig(t, next, store), quiet); err != nil {
		t.Fatal(err)
	}
	if err := testpkt.CheckStore(store, 300); err != nil {
		t.Fatal(err)
	}
}

// TestDiskFull: the store's filesystem fills up mid-capture. The writer
// retries without damaging anything; once room is made, every packet is
// stored exactly once. Needs root (to mount a small tmpfs).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "fmcap-test", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	filler := filepath.Join(mnt, "filler")
	f, _ := os.Create(filler)
	f.Write(make([]byte, 15<<20))
	f.Close()
	store := filepath.Join(mnt, "store")
	ring := newTestRing(t, 1<<24, 1)
	cfg := testConfig(t, ring, store)
	cfg.Compress = false // incompressible, to fill the disk for sure
	const n = 40_000     // about 6 MB of pcap: more than the 1 MiB left, less than 16 MiB
	go produce(t, ring, 0, n, true)
	var logs lockedBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, log) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "no space left") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "no space left") {
		t.Fatal("the disk never filled up")
	}
	os.Remove(filler)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("writer did not recover after room was made; its log:\n%s", tail(logs.String(), 2000))
	}
	if err := testpkt.CheckStore(store, n); err != nil {
		t.Fatal(err)
	}
	// The episode is logged when it starts and when it ends.
	if l := logs.String(); strings.Count(l, "store write failed") != 1 || !strings.Contains(l, "store writes resumed") {
		t.Fatalf("want one start and one end of the disk-full episode in the log:\n%s", tail(l, 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// lockedBuf collects the writer's log while the test reads it.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// checkRetained checks a store after retention: the removed chunks are in
// the retention log, contiguous from seq 1, and what remains holds every
// later seq exactly once, each with its own packet.
func checkRetained(t *testing.T, store string, n int) (removed int) {
	t.Helper()
	gone, err := fmstore.RemovedRanges(store)
	if err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	for _, r := range gone {
		if r.FirstSeq != next {
			t.Fatalf("retention log: chunk %d..%d removed, want one starting at %d", r.FirstSeq, r.LastSeq, next)
		}
		next = r.LastSeq + 1
	}
	if err := testpkt.CheckStoreFrom(store, next, n); err != nil {
		t.Fatal(err)
	}
	return len(gone)
}

func storeBytes(t *testing.T, dir string) int64 {
	var total int64
	list, _ := chunk.List(dir)
	for _, in := range list {
		total += int64(in.Size(dir))
	}
	return total
}

// TestRetentionQuota: the store stays under --retain-bytes, oldest chunks
// first, each removal logged, and nothing else is lost.
func TestRetentionQuota(t *testing.T) {
	ring := newTestRing(t, 1<<24, 1)
	store := filepath.Join(t.TempDir(), "store")
	cfg := testConfig(t, ring, store)
	cfg.Compress = false
	cfg.ChunkSize = 256 << 10
	cfg.RetainBytes = 1 << 20
	const n = 40_000 // about 6 MB of pcap in 256 KiB chunks
	go produce(t, ring, 0, n, true)
	if err := Run(context.Background(), cfg, quiet); err != nil {
		t.Fatal(err)
	}
	if got := storeBytes(t, store); got > int64(cfg.RetainBytes) {
		t.Errorf("store holds %d bytes, quota %d", got, cfg.RetainBytes)
	}
	if removed := checkRetained(t, store, n); removed < 15 {
		t.Errorf("only %d chunks removed", removed)
	}
}

// TestRetentionAge removes chunks whose newest packet is older than
// --retain-age (testpkt's packets are from 2026-01-02).
func TestRetentionAge(t *testing.T) {
	ring := newTestRing(t, 1<<24, 1)
	store := filepath.Join(t.TempDir(), "store")
	cfg := testConfig(t, ring, store)
	cfg.ChunkSize = 256 << 10
	cfg.RetainAge = time.Hour
	go produce(t, ring, 0, 10_000, true)
	if err := Run(context.Background(), cfg, quiet); err != nil {
		t.Fatal(err)
	}
	list, _ := chunk.List(store)
	gone, _ := fmstore.RemovedRanges(store)
	// Every finished chunk is old; the last one is removed once finished,
	// by the next enforcement.
	if len(gone) == 0 || len(list) > 1 {
		t.Fatalf("%d chunks left, %d removed", len(list), len(gone))
	}
	for _, r := range gone {
		if r.Reason != "age" {
			t.Errorf("reason %q", r.Reason)
		}
	}
}

// TestDiskFullRetention: the disk fills while capturing and retention is
// set; the writer removes the oldest chunk to make room and goes on, with
// no chunk damaged and no packet lost but those retention logged.
func TestDiskFullRetention(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "fmcap-test", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	store := filepath.Join(mnt, "store")
	ring := newTestRing(t, 1<<24, 1)
	cfg := testConfig(t, ring, store)
	cfg.Compress = false
	cfg.ChunkSize = 512 << 10
	cfg.RetainBytes = 1 << 40 // set, but never the limit: only the full disk triggers removal
	const n = 60_000          // about 9 MB of pcap on a 4 MiB disk
	go produce(t, ring, 0, n, true)
	var logs lockedBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, log) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("writer stuck; its log:\n%s", tail(logs.String(), 2000))
	}
	if !strings.Contains(logs.String(), "reason=full") {
		t.Fatalf("the disk never filled up; log:\n%s", tail(logs.String(), 2000))
	}
	if removed := checkRetained(t, store, n); removed == 0 {
		t.Fatal("nothing removed")
	}
}

// TestStoreModes: started with umask 0, the writer still makes its store
// 0750 and every file in it 0640 (chunks, frame tables, the retention log).
func TestStoreModes(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	ring := newTestRing(t, 1<<20, 1)
	store := filepath.Join(t.TempDir(), "new", "store")
	cfg := testConfig(t, ring, store)
	cfg.ChunkSize = 64 << 10 // several chunks
	cfg.RetainBytes = 16 << 10
	go produce(t, ring, 0, 5000, true)
	if err := Run(context.Background(), cfg, quiet); err != nil {
		t.Fatal(err)
	}
	var files int
	err := filepath.WalkDir(filepath.Dir(store), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		want := os.FileMode(0o640)
		if d.IsDir() {
			want = 0o750
		} else {
			files++
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %o, want %o", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store, fmstore.RetentionLog)); err != nil || files < 3 {
		t.Fatalf("want chunks and a retention log; %d files: %v", files, err)
	}
}
