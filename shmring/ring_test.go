package shmring

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/fmcap/fmcap/internal/origin"
	"golang.org/x/sys/unix"
)

func newRing(t testing.TB, cfg Config) (*Ring, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ring")
	if err := Create(path, cfg); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, path
}

// payload fills b deterministically from seq, so any consumer can check a
// record knowing only its seq: no torn, reordered or invented record passes.
func payload(b []byte, seq uint64) {
	x := seq*0x9E3779B97F4A7C15 | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

func lenFor(seq uint64, max int) int { return int((seq*2654435761)>>7)%max + 1 }

// originFor is the origin writeFor gives seq: none for most, a GWLB or a
// mirror (IPv4 or IPv6 outer) for some, so that records of every length
// cross the wrap.
func originFor(seq uint64) *origin.Origin {
	var o origin.Origin
	switch seq % 7 {
	case 1:
		o = origin.FromGWLB(seq, ^seq, uint32(seq))
	case 3:
		o = origin.FromMirror(uint32(seq)&0xffffff, []byte{198, 18, byte(seq), 1})
	case 5:
		var a [16]byte
		a[15] = byte(seq)
		o = origin.FromMirror(uint32(seq>>8)&0xffffff, a[:])
	default:
		return nil
	}
	return &o
}

func checkRecord(rec Record, buf []byte, max int) bool {
	n := lenFor(rec.Seq, max)
	if o := originFor(rec.Seq); o == nil {
		if rec.OriginKind != origin.None || len(rec.Origin) != 0 {
			return false
		}
	} else if rec.OriginKind != o.Kind || string(rec.Origin) != string(o.Bytes()) {
		return false
	}
	if len(rec.Data) != n || rec.WireLen != uint32(n)+4 || rec.TS != int64(rec.Seq)*7 || rec.Port != uint16(rec.Seq) || rec.Rule != uint32(rec.Seq>>3) || rec.Dir != Dir(rec.Seq%4) {
		return false
	}
	payload(buf[:n], rec.Seq)
	return string(buf[:n]) == string(rec.Data)
}

func writeFor(p *Producer, seq uint64, buf []byte, max int) bool {
	n := lenFor(seq, max)
	payload(buf[:n], seq)
	got, ok := p.WriteOrigin(int64(seq)*7, uint32(n)+4, uint16(seq), Dir(seq%4), uint32(seq>>3), originFor(seq), buf[:n])
	if ok && got != seq {
		panic("seq mismatch")
	}
	return ok
}

func TestCreateRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"not pow2", Config{DataSize: 3 << 20, Consumers: []ConsumerSpec{{"w", Lossless}}}, "power of two"},
		{"too small", Config{DataSize: 1 << 12, Consumers: []ConsumerSpec{{"w", Lossless}}}, "too small"},
		{"no consumers", Config{DataSize: 1 << 22}, "consumers"},
		{"dup", Config{DataSize: 1 << 22, Consumers: []ConsumerSpec{{"w", Lossless}, {"w", Lossy}}}, "twice"},
		{"bad name", Config{DataSize: 1 << 22, Consumers: []ConsumerSpec{{"a b", Lossless}}}, "name"},
		{"bad mode", Config{DataSize: 1 << 22, Consumers: []ConsumerSpec{{"w", 7}}}, "mode"},
	}
	for _, tc := range tests {
		err := Create(filepath.Join(dir, tc.name), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestOpenRejectsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := Create(good, Config{DataSize: 1 << 20, MaxCaplen: 1024, Consumers: []ConsumerSpec{{"w", Lossless}}}); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(good)
	patch := func(name string, f func(b []byte) []byte) string {
		b := f(append([]byte(nil), orig...))
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o600)
		return p
	}
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[offHeaderCRC:], crc32.Checksum(b[:headerCRCBytes], crcTable))
		return b
	}
	tests := []struct {
		path string
		want error
	}{
		{patch("short", func(b []byte) []byte { return b[:100] }), ErrNotRing},
		{patch("text", func(b []byte) []byte { return []byte(strings.Repeat("hello", 2000)) }), ErrNotRing},
		{patch("flip", func(b []byte) []byte { b[20] ^= 1; return b }), ErrNotRing},
		{patch("version", func(b []byte) []byte { b[offVersion] = 2; return resum(b) }), ErrVersion},
		{patch("truncated", func(b []byte) []byte { return b[:headerSize+1<<19] }), ErrGeometry},
		{patch("size", func(b []byte) []byte { b[offDataSize] = 3; return resum(b) }), ErrGeometry},
	}
	for _, tc := range tests {
		_, err := Open(tc.path)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("Open(%s): got %v, want %v naming the file", filepath.Base(tc.path), err, tc.want)
		}
	}
	if r, err := Open(good); err != nil {
		t.Errorf("Open(good): %v", err)
	} else {
		r.Close()
	}
}

// TestHeaderOffsets pins the documented layout: a ring written by this code
// has its fields where FORMAT says, so another reader can rely on the doc.
func TestHeaderOffsets(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 20, MaxCaplen: 2048, FirstSeq: 77, Consumers: []ConsumerSpec{{"writer", Lossless}, {"indexer", Lossy}}})
	le := binary.LittleEndian
	m := r.mem
	if string(m[0:8]) != "FMCRING\x00" || le.Uint32(m[8:]) != 1 || le.Uint32(m[12:]) != 4096 || le.Uint64(m[16:]) != 1<<20 || le.Uint32(m[24:]) != 2048 || le.Uint32(m[28:]) != 2 || le.Uint64(m[40:]) != 77 {
		t.Fatalf("header fields not at documented offsets: % x", m[:64])
	}
	if string(m[256:262]) != "writer" || le.Uint32(m[256+32:]) != 1 || string(m[384:391]) != "indexer" || le.Uint32(m[384+32:]) != 2 || le.Uint64(m[256+72:]) != 77 {
		t.Fatalf("consumer slots not at documented offsets")
	}
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	p.Write(123456789, 99, 7, DirEgress, 42, []byte{1, 2, 3})
	p.Publish()
	d := r.data
	if le.Uint32(d[0:]) != 48 || le.Uint32(d[4:]) != 3 || le.Uint64(d[8:]) != 77 || le.Uint64(d[16:]) != 123456789 || le.Uint32(d[24:]) != 99 || le.Uint16(d[28:]) != 7 || d[30] != 2 || le.Uint32(d[32:]) != 42 || string(d[40:43]) != "\x01\x02\x03" {
		t.Fatalf("record not at documented offsets: % x", d[:48])
	}
	if le.Uint64(m[64:]) != 48 || le.Uint64(m[80:]) != 78 {
		t.Fatalf("head/next seq: %d %d", le.Uint64(m[64:]), le.Uint64(m[80:]))
	}
}

// Reserved header bytes and the padding after the data are zero, whatever
// an earlier lap left there (the ring is filled with 0xff first).
func TestReservedAndPaddingZero(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 2048, FirstSeq: 1, Consumers: []ConsumerSpec{{"writer", Lossless}}})
	for i := range r.data {
		r.data[i] = 0xff
	}
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 17)
	for i := range data {
		data[i] = 0xaa
	}
	le := binary.LittleEndian
	off := 0
	for n := 0; n <= 17; n++ {
		if _, ok := p.Write(5, uint32(n), 1, DirIngress, 9, data[:n]); !ok {
			t.Fatal("dropped")
		}
		rec := r.data[off:]
		rl := int(le.Uint32(rec))
		if rl != (40+n+7)/8*8 || int(le.Uint32(rec[4:])) != n || rec[31] != 0 || le.Uint32(rec[36:]) != 0 {
			t.Fatalf("len %d: header % x", n, rec[:40])
		}
		for i := 40 + n; i < rl; i++ {
			if rec[i] != 0 {
				t.Fatalf("len %d: padding byte %d is %#x", n, i, rec[i])
			}
		}
		if string(rec[40:40+n]) != string(data[:n]) {
			t.Fatalf("len %d: data % x", n, rec[40:40+n])
		}
		off += rl
	}
}

// TestOriginRecordBytes pins the FORMAT of a record with origin: kind at
// 31, length at 36, the blob after the packet bytes, zero padding.
func TestOriginRecordBytes(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 2048, FirstSeq: 1, Consumers: []ConsumerSpec{{"writer", Lossless}}})
	for i := range r.data {
		r.data[i] = 0xff
	}
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Attach("writer")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte{1, 2, 3, 4, 5}
	g := origin.FromGWLB(0x1122334455667788, 0x99aabbccddeeff00, 0xcafef00d)
	if _, ok := p.WriteOrigin(5, 60, 2, DirEgress, 9, &g, data); !ok {
		t.Fatal("dropped")
	}
	p.Publish()
	rec := r.data[:72]
	le := binary.LittleEndian
	if got, want := le.Uint32(rec), uint32(72); got != want { // align8(40+5+20)
		t.Fatalf("record length: got %d want %d", got, want)
	}
	if rec[31] != 1 || rec[36] != 20 || rec[37] != 0 || rec[38] != 0 || rec[39] != 0 {
		t.Fatalf("origin header bytes: got % x", rec[28:40])
	}
	if string(rec[45:65]) != string(g.Bytes()) || string(rec[65:72]) != string(make([]byte, 7)) {
		t.Fatalf("blob and padding: got % x", rec[40:72])
	}
	got, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != string(data) || got.OriginKind != origin.GWLB || string(got.Origin) != string(g.Bytes()) || got.Port != 2 || got.Dir != DirEgress || got.Rule != 9 {
		t.Fatalf("record: got %+v", got)
	}
	// A length beyond origin.Max is corruption, not a read past the record.
	if _, ok := p.WriteOrigin(6, 60, 2, DirEgress, 9, &g, data); !ok {
		t.Fatal("dropped")
	}
	p.Publish()
	r.data[72+36] = 21
	var ce *CorruptError
	if _, err := c.Next(); !errors.As(err, &ce) {
		t.Fatalf("origin length 21: got %v, want a *CorruptError", err)
	}
}

// TestWrapAround drives a tiny ring through many laps with random record
// sizes, one lossless and one lossy consumer interleaved with the producer.
func TestWrapAround(t *testing.T) {
	const maxLen = 300
	r, path := newRing(t, Config{DataSize: 4096, MaxCaplen: 512, Consumers: []ConsumerSpec{{"w", Lossless}, {"i", Lossy}}})
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Attach("w")
	if err != nil {
		t.Fatal(err)
	}
	lz, err := r.Attach("i")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 1024)
	var attempted, drops, got, lossyGot, lossyMissed uint64
	next := r.FirstSeq()
	var pendingLossy []uint64
	for round := 0; round < 20000; round++ {
		for i := rng.Intn(8); i > 0; i-- {
			attempted++
			if writeFor(p, next, buf, maxLen) {
				next++
			} else {
				drops++
			}
		}
		p.Publish()
		for i := rng.Intn(10); i > 0; i-- {
			rec, err := w.Next()
			if err == ErrEmpty {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Seq != r.FirstSeq()+got || !checkRecord(rec, buf, maxLen) {
				t.Fatalf("lossless: bad record seq %d (want %d)", rec.Seq, r.FirstSeq()+got)
			}
			got++
			if rng.Intn(3) == 0 {
				w.Commit()
			}
		}
		if rng.Intn(4) == 0 { // the lossy one runs rarely, so it is lapped
			for {
				rec, err := lz.Next()
				if err == ErrEmpty {
					break
				}
				if err == ErrOverrun {
					pendingLossy = pendingLossy[:0]
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if lo, hi, ok := lz.Gap(); ok {
					lossyMissed += hi - lo + 1
				}
				ok := checkRecord(rec, buf, maxLen)
				if !ok {
					pendingLossy = append(pendingLossy, ^uint64(0))
				} else {
					pendingLossy = append(pendingLossy, rec.Seq)
				}
			}
			if err := lz.Verify(); err == nil {
				for _, s := range pendingLossy {
					if s == ^uint64(0) {
						t.Fatalf("lossy: a torn record passed Verify")
					}
				}
				lossyGot += uint64(len(pendingLossy))
				lz.Commit()
			}
			pendingLossy = pendingLossy[:0]
		}
	}
	p.Close()
	for {
		rec, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Seq != r.FirstSeq()+got || !checkRecord(rec, buf, maxLen) {
			t.Fatalf("lossless tail: bad record %d", rec.Seq)
		}
		got++
	}
	written := next - r.FirstSeq()
	if got != written || attempted != written+drops || drops == 0 {
		t.Fatalf("lossless got %d, written %d, drops %d, attempted %d", got, written, drops, attempted)
	}
	in := r.Info()
	if in.Drops != drops || in.Written != written {
		t.Fatalf("info drops %d written %d, want %d %d", in.Drops, in.Written, drops, written)
	}
	if in.Consumers[1].Overruns == 0 || in.Consumers[1].Missed != lossyMissed {
		t.Fatalf("lossy: overruns %d, missed %d (counted %d)", in.Consumers[1].Overruns, in.Consumers[1].Missed, lossyMissed)
	}
	if lossyGot+lossyMissed > written {
		t.Fatalf("lossy delivered %d + missed %d > written %d", lossyGot, lossyMissed, written)
	}
	t.Logf("%s: written %d drops %d; lossy got %d missed %d overruns %d", path, written, drops, lossyGot, lossyMissed, in.Consumers[1].Overruns)
}

// TestResumeFromCursor: a consumer that detaches and comes back continues
// exactly after the last record it committed.
func TestResumeFromCursor(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 1024, Consumers: []ConsumerSpec{{"w", Lossless}}})
	p, _ := r.NewProducer(Blocking)
	buf := make([]byte, 2048)
	for s := uint64(1); s <= 100; s++ {
		writeFor(p, s, buf, 1000)
	}
	p.Publish()
	c, _ := r.Attach("w")
	if _, err := r.Attach("w"); !errors.Is(err, ErrAttached) {
		t.Fatalf("second attach: got %v, want ErrAttached", err)
	}
	for i := 0; i < 40; i++ {
		c.Next()
	}
	c.Commit()
	for i := 0; i < 10; i++ { // read but not committed: must come again
		c.Next()
	}
	c.Close()
	c, err := r.Attach("w")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.Next()
	if err != nil || rec.Seq != 41 || !checkRecord(rec, buf, 1000) {
		t.Fatalf("after reattach: seq %d err %v, want 41", rec.Seq, err)
	}
}

func TestAttachUnknown(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 1024, Consumers: []ConsumerSpec{{"w", Lossless}}})
	if _, err := r.Attach("nope"); err == nil || !strings.Contains(err.Error(), "declared") {
		t.Fatalf("got %v", err)
	}
}

func TestCorruptRecordIsTypedError(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 1024, Consumers: []ConsumerSpec{{"w", Lossless}}})
	p, _ := r.NewProducer(Live)
	p.Write(1, 10, 0, 0, 0, make([]byte, 10))
	p.Publish()
	binary.LittleEndian.PutUint32(r.data[4:], 5000) // caplen beyond max
	c, _ := r.Attach("w")
	_, err := c.Next()
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *CorruptError", err)
	}
}

// TestLossyGapsNeverOverlap: a lossy consumer lapped twice before it
// verifies anything is told about each missed seq once: the second gap
// starts where the first one ended, not again at the last verified seq.
func TestLossyGapsNeverOverlap(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1024, MaxCaplen: 64, Consumers: []ConsumerSpec{{"ix", Lossy}}})
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Attach("ix")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 24) // 64-byte records: 16 per lap
	write := func(n int) {
		for i := 0; i < n; i++ {
			p.Write(1, 24, 0, DirIngress, 0, data)
		}
		p.Publish()
	}
	// drain reads until empty, returning the gaps reported.
	var missed uint64
	var gaps [][2]uint64
	drain := func() (got int) {
		for {
			_, err := c.Next()
			if err == ErrOverrun {
				continue
			}
			if err != nil {
				return got
			}
			if lo, hi, ok := c.Gap(); ok {
				gaps = append(gaps, [2]uint64{lo, hi})
				missed += hi - lo + 1
			}
			got++
		}
	}
	write(4)
	drain()   // reads 1..4, not verified
	write(20) // laps the consumer: the next read is an overrun, and it jumps to the head
	drain()
	write(4)
	drain()   // reads 25..28, told it missed 1..24
	write(20) // laps it again before any Verify
	drain()
	write(4)
	drain() // reads 49..52: the gap must start at 25, not again at 1
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i][0] <= gaps[i-1][1] {
			t.Fatalf("gaps overlap: %v", gaps)
		}
	}
	if len(gaps) < 2 {
		t.Fatalf("expected two gaps, got %v", gaps)
	}
	if written := uint64(52); missed >= written {
		t.Fatalf("missed %d of %d written", missed, written)
	}
}

// TestProducerRingMemory: a producer attaching to a ring in tmpfs finds
// its pages already there (populated, so no record takes a page fault),
// and a ring whose filesystem cannot hold it (a tmpfs of 1 MiB under a
// 4 MiB ring: Create's truncate makes a sparse file) is refused when the
// producer attaches, with an error naming the cause, instead of a SIGBUS
// on the first record past the first megabyte.
func TestProducerRingMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (CI runs as root)")
	}
	mount := func(size string) string {
		dir := t.TempDir()
		if err := unix.Mount("fmcap-test", dir, "tmpfs", 0, "size="+size); err != nil {
			t.Skipf("mount tmpfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(dir, 0) })
		return dir
	}
	open := func(dir string) *Ring {
		path := filepath.Join(dir, "ring")
		if err := Create(path, Config{DataSize: 4 << 20, Consumers: []ConsumerSpec{{"w", Lossless}}}); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	// A tmpfs with room: attached, every page of the ring present.
	r := open(mount("8m"))
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	// Pages present (mincore) in the ring, and in a probe: an anonymous
	// mapping given the same advice, which an emulator that accepts and
	// ignores it (qemu-user) leaves absent.
	absent := func(m []byte) int {
		vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatalf("mincore: %v", e)
		}
		n := 0
		for _, v := range vec {
			if v&1 == 0 {
				n++
			}
		}
		return n
	}
	missing := absent(r.mem)
	p.Close()
	probe, err := unix.Mmap(-1, 0, 4*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(probe)
	if unix.Madvise(probe, unix.MADV_POPULATE_WRITE) != nil || absent(probe) != 0 {
		t.Skip("madvise(MADV_POPULATE_WRITE) does not populate here (an emulator, or Linux before 5.14): nothing to check")
	}
	if missing != 0 {
		t.Fatalf("%d of the ring's %d pages not present after the producer attached", missing, (len(r.mem)+os.Getpagesize()-1)/os.Getpagesize())
	}
	// The same ring on a tmpfs too small for it: refused.
	_, err = open(mount("1m")).NewProducer(Live)
	if err == nil || !strings.Contains(err.Error(), "less room than the ring") {
		t.Fatalf("producer on a ring larger than its tmpfs: %v, want the ring's memory refused", err)
	}
}
