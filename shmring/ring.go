package shmring

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"os"
	"path/filepath"
	"time"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"
)

const (
	// Version is the ring format version this package reads and writes.
	Version = 1
	// MaxConsumers is the number of consumer slots in the header.
	MaxConsumers = 16
	// DefaultMaxCaplen is the largest record payload a ring accepts unless
	// told otherwise: the largest snap length tcpdump uses, so loopback and
	// GRO-sized packets (64 KiB and more) fit whole.
	DefaultMaxCaplen = 262144

	magic     = "FMCRING\x00"
	padFlag   = 1 << 31
	maxName   = 31
	hugetlbfs = 0x958458f6
)

var (
	// ErrNotRing means the file is not a ring (wrong magic or header checksum).
	ErrNotRing = errors.New("not an fmcap ring")
	// ErrVersion means the ring was made by another version of the format.
	ErrVersion = errors.New("unsupported ring version")
	// ErrGeometry means the header's geometry does not fit the file.
	ErrGeometry = errors.New("bad ring geometry")
	// ErrEmpty is returned by Consumer.Next when no record is available yet.
	ErrEmpty = errors.New("ring empty")
	// ErrOverrun is returned by Consumer.Verify when the producer lapped a
	// lossy consumer: what it read since the previous Verify is void.
	ErrOverrun = errors.New("consumer overrun")
	// ErrAttached means another live process holds the producer or consumer role.
	ErrAttached = errors.New("already attached")
)

// CorruptError reports a violated invariant in the shared file. It is not
// recoverable: the ring must be destroyed and created again.
type CorruptError struct {
	Path string
	Pos  uint64 // absolute position in the data area, if relevant
	What string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("ring %q corrupt at position %d: %s", e.Path, e.Pos, e.What)
}

// ConsumerMode says what happens when a consumer falls a whole ring behind.
type ConsumerMode uint32

const (
	Lossless ConsumerMode = 1 // the producer drops (or waits) rather than overrun it
	Lossy    ConsumerMode = 2 // the producer overruns it; it learns the missed range
)

func (m ConsumerMode) String() string {
	switch m {
	case Lossless:
		return "lossless"
	case Lossy:
		return "lossy"
	}
	return fmt.Sprintf("mode(%d)", uint32(m))
}

// ConsumerSpec declares one consumer at creation.
type ConsumerSpec struct {
	Name string
	Mode ConsumerMode
}

// Config is the geometry of a new ring.
type Config struct {
	DataSize  uint64 // bytes in the data area; a power of two
	MaxCaplen uint32 // 0 means DefaultMaxCaplen
	FirstSeq  uint64 // 0 means 1
	Consumers []ConsumerSpec
}

func maxRecord(maxCaplen uint32) uint64 { return align8(recHdrSize + uint64(maxCaplen)) }

func align8(n uint64) uint64 { return (n + 7) &^ 7 }

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxName {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func (c *Config) check() error {
	if c.MaxCaplen == 0 {
		c.MaxCaplen = DefaultMaxCaplen
	}
	if c.FirstSeq == 0 {
		c.FirstSeq = 1
	}
	if c.DataSize == 0 || bits.OnesCount64(c.DataSize) != 1 {
		return fmt.Errorf("data size %d is not a power of two", c.DataSize)
	}
	if min := 4 * maxRecord(c.MaxCaplen); c.DataSize < min {
		return fmt.Errorf("data size %d too small for max caplen %d: need at least %d", c.DataSize, c.MaxCaplen, min)
	}
	if len(c.Consumers) == 0 || len(c.Consumers) > MaxConsumers {
		return fmt.Errorf("need 1 to %d consumers, got %d", MaxConsumers, len(c.Consumers))
	}
	seen := map[string]bool{}
	for _, s := range c.Consumers {
		if !validName(s.Name) {
			return fmt.Errorf("consumer name %q: use 1 to %d of [a-zA-Z0-9_.-]", s.Name, maxName)
		}
		if seen[s.Name] {
			return fmt.Errorf("consumer %q declared twice", s.Name)
		}
		seen[s.Name] = true
		if s.Mode != Lossless && s.Mode != Lossy {
			return fmt.Errorf("consumer %q: mode must be lossless or lossy", s.Name)
		}
	}
	return nil
}

// Ring is an open ring file.
type Ring struct {
	path      string
	f         *os.File
	mem       mmap.MMap
	data      []byte // the data area
	size      uint64 // len(data)
	mask      uint64
	maxCaplen uint32
	nslots    int
	firstSeq  uint64
	id        uint64
}

// Create makes a new ring at path. The file is built under a temporary name
// and renamed, so a ring that exists is always complete. It fails if path
// exists: destroying a ring is a decision, never a side effect.
func Create(path string, cfg Config) error {
	if err := cfg.check(); err != nil {
		return fmt.Errorf("create ring %q: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("create ring %q: file exists (destroy it first)", path)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create ring %q: %w", path, err)
	}
	defer f.Close()
	fail := func(err error) error {
		os.Remove(tmp)
		return fmt.Errorf("create ring %q: %w", path, err)
	}
	total := int64(headerSize + cfg.DataSize)
	var st unix.Statfs_t
	// uint32: f_type is an int32 on 32-bit targets, where the magic would
	// not fit, and an int64 elsewhere.
	if unix.Fstatfs(int(f.Fd()), &st) == nil && uint32(st.Type) == hugetlbfs && st.Bsize > 0 {
		// hugetlbfs maps whole huge pages only.
		hp := int64(st.Bsize)
		total = (total + hp - 1) / hp * hp
	}
	if err := f.Truncate(total); err != nil {
		return fail(err)
	}
	mem, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		return fail(fmt.Errorf("mmap: %w", err))
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		mem.Unmap()
		return fail(err)
	}
	le := binary.LittleEndian
	copy(mem[offMagic:], magic)
	le.PutUint32(mem[offVersion:], Version)
	le.PutUint32(mem[offHeaderSize:], headerSize)
	le.PutUint64(mem[offDataSize:], cfg.DataSize)
	le.PutUint32(mem[offMaxCaplen:], cfg.MaxCaplen)
	le.PutUint32(mem[offNConsumers:], uint32(len(cfg.Consumers)))
	copy(mem[offRingID:], id[:])
	le.PutUint64(mem[offFirstSeq:], cfg.FirstSeq)
	le.PutUint64(mem[offCreated:], uint64(time.Now().UnixNano()))
	le.PutUint64(mem[offNextSeq:], cfg.FirstSeq)
	le.PutUint32(mem[offClosed:], 0)
	for i, s := range cfg.Consumers {
		base := offSlots + i*slotSize
		copy(mem[base+slotName:base+slotName+32], s.Name)
		le.PutUint32(mem[base+slotMode:], uint32(s.Mode))
		le.PutUint64(mem[base+slotCurSeq:], cfg.FirstSeq)
	}
	le.PutUint32(mem[offHeaderCRC:], crc32.Checksum(mem[:headerCRCBytes], crcTable))
	if err := mem.Flush(); err != nil {
		mem.Unmap()
		return fail(err)
	}
	if err := mem.Unmap(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Open maps an existing ring and checks its header.
func Open(path string) (*Ring, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open ring: %w", err)
	}
	r, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func open(path string, f *os.File) (*Ring, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open ring %q: %w", path, err)
	}
	if st.Size() < headerSize {
		return nil, fmt.Errorf("open ring %q: %w (file is %d bytes, shorter than a ring header)", path, ErrNotRing, st.Size())
	}
	mem, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open ring %q: mmap: %w", path, err)
	}
	r, err := checkHeader(path, mem, uint64(st.Size()))
	if err != nil {
		mem.Unmap()
		return nil, err
	}
	r.f = f
	return r, nil
}

// checkHeader validates the header bytes against the file size and returns
// the ring they describe. It is the decoder the fuzz target drives.
func checkHeader(path string, mem []byte, fileSize uint64) (*Ring, error) {
	le := binary.LittleEndian
	if len(mem) < headerSize || string(mem[offMagic:offMagic+8]) != magic {
		return nil, fmt.Errorf("open ring %q: %w (bad magic)", path, ErrNotRing)
	}
	if le.Uint32(mem[offHeaderCRC:]) != crc32.Checksum(mem[:headerCRCBytes], crcTable) {
		return nil, fmt.Errorf("open ring %q: %w (header checksum mismatch)", path, ErrNotRing)
	}
	if v := le.Uint32(mem[offVersion:]); v != Version {
		return nil, fmt.Errorf("open ring %q: %w %d (this build reads version %d; recreate the ring with this build's fmring)", path, ErrVersion, v, Version)
	}
	geo := func(format string, a ...any) error {
		return fmt.Errorf("open ring %q: %w: %s", path, ErrGeometry, fmt.Sprintf(format, a...))
	}
	if hs := le.Uint32(mem[offHeaderSize:]); hs != headerSize {
		return nil, geo("header size %d, want %d", hs, headerSize)
	}
	ds := le.Uint64(mem[offDataSize:])
	mc := le.Uint32(mem[offMaxCaplen:])
	if ds == 0 || bits.OnesCount64(ds) != 1 || ds < 4*maxRecord(mc) || mc == 0 {
		return nil, geo("data size %d with max caplen %d", ds, mc)
	}
	if ds > fileSize-headerSize || uint64(len(mem)) < headerSize+ds {
		return nil, geo("data size %d does not fit a file of %d bytes", ds, fileSize)
	}
	n := le.Uint32(mem[offNConsumers:])
	if n == 0 || n > MaxConsumers {
		return nil, geo("%d consumers", n)
	}
	r := &Ring{
		path: path, mem: mem, data: mem[headerSize : headerSize+ds], size: ds, mask: ds - 1,
		maxCaplen: mc, nslots: int(n), firstSeq: le.Uint64(mem[offFirstSeq:]), id: le.Uint64(mem[offRingID:]),
	}
	for i := 0; i < r.nslots; i++ {
		s := r.slot(i)
		if !validName(s.name()) {
			return nil, &CorruptError{Path: path, What: fmt.Sprintf("consumer slot %d has an invalid name", i)}
		}
		if m := s.mode(); m != Lossless && m != Lossy {
			return nil, &CorruptError{Path: path, What: fmt.Sprintf("consumer slot %d has mode %d", i, m)}
		}
	}
	return r, nil
}

// Close unmaps the ring. Producers and consumers must be closed first.
func (r *Ring) Close() error {
	err := r.mem.Unmap()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Path is the file the ring lives in.
func (r *Ring) Path() string { return r.path }

// ID is the ring's random identity, fixed at creation.
func (r *Ring) ID() uint64 { return r.id }

// FirstSeq is the seq given to the first record the ring ever held.
func (r *Ring) FirstSeq() uint64 { return r.firstSeq }

// MaxCaplen is the largest record payload; longer packets are cut to it.
func (r *Ring) MaxCaplen() uint32 { return r.maxCaplen }

// DataSize is the size of the data area in bytes.
func (r *Ring) DataSize() uint64 { return r.size }

type slot struct {
	mem  []byte
	base int
}

func (r *Ring) slot(i int) slot { return slot{r.mem, offSlots + i*slotSize} }

func (s slot) name() string {
	b := s.mem[s.base+slotName : s.base+slotName+32]
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func (s slot) mode() ConsumerMode {
	return ConsumerMode(binary.LittleEndian.Uint32(s.mem[s.base+slotMode:]))
}
func (s slot) field(off int) *atomicU64 { return u64(s.mem, s.base+off) }

// ConsumerInfo is one consumer's state as fmring info shows it.
type ConsumerInfo struct {
	Name       string
	Mode       ConsumerMode
	PID        uint32
	Cursor     uint64
	CursorSeq  uint64
	LagBytes   uint64
	LagRecords uint64
	Delivered  uint64
	Overruns   uint64
	Missed     uint64
	LastMissLo uint64
	LastMissHi uint64
}

// Info is a snapshot of the ring's geometry and counters.
type Info struct {
	Path        string
	ID          uint64
	Version     uint32
	DataSize    uint64
	MaxCaplen   uint32
	FirstSeq    uint64
	Created     time.Time
	Head        uint64
	NextSeq     uint64
	Written     uint64
	Drops       uint64
	DropBytes   uint64
	Closed      bool
	ProducerPID uint32
	Consumers   []ConsumerInfo
}

// Info reads the header counters (each atomically; the set is not a single
// instant, which is fine for monitoring).
func (r *Ring) Info() Info {
	le := binary.LittleEndian
	in := Info{
		Path: r.path, ID: r.id, Version: Version, DataSize: r.size, MaxCaplen: r.maxCaplen,
		FirstSeq: r.firstSeq, Created: time.Unix(0, int64(le.Uint64(r.mem[offCreated:]))),
		Head: u64(r.mem, offHead).Load(), NextSeq: u64(r.mem, offNextSeq).Load(),
		Written: u64(r.mem, offWritten).Load(), Drops: u64(r.mem, offDrops).Load(),
		DropBytes: u64(r.mem, offDropBytes).Load(), Closed: u32(r.mem, offClosed).Load() != 0,
		ProducerPID: u32(r.mem, offProdPID).Load(),
	}
	for i := 0; i < r.nslots; i++ {
		s := r.slot(i)
		ci := ConsumerInfo{
			Name: s.name(), Mode: s.mode(), PID: u32(r.mem, s.base+slotPID).Load(),
			Cursor: s.field(slotCursor).Load(), CursorSeq: s.field(slotCurSeq).Load(),
			Delivered: s.field(slotDeliv).Load(), Overruns: s.field(slotOverr).Load(),
			Missed: s.field(slotMissed).Load(), LastMissLo: s.field(slotMissLo).Load(),
			LastMissHi: s.field(slotMissHi).Load(),
		}
		if in.Head > ci.Cursor {
			ci.LagBytes = in.Head - ci.Cursor
		}
		if in.NextSeq > ci.CursorSeq {
			ci.LagRecords = in.NextSeq - ci.CursorSeq
		}
		in.Consumers = append(in.Consumers, ci)
	}
	return in
}

// Remove deletes a ring file, refusing while a live process is attached to it.
func Remove(path string) error {
	r, err := Open(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if pid := r.producerOwner().holder(); pid != 0 {
		return fmt.Errorf("ring %q: producer pid %d is attached; stop it first", path, pid)
	}
	for i := 0; i < r.nslots; i++ {
		if pid := r.slot(i).owner().holder(); pid != 0 {
			return fmt.Errorf("ring %q: consumer %s (pid %d) is attached; stop it first", path, r.slot(i).name(), pid)
		}
	}
	return os.Remove(path)
}

// Prefault maps every page of the ring writable now, without changing its
// contents (MADV_POPULATE_WRITE), so that the producer's hot path never
// takes a page fault: on a fresh hugetlbfs ring the first touch of each
// page costs more than forwarding the packets that land on it. It fails
// harmlessly on kernels before 5.14.
func (r *Ring) Prefault() error {
	if err := unix.Madvise(r.mem, unix.MADV_POPULATE_WRITE); err != nil {
		return fmt.Errorf("prefault ring %q: %w", r.path, err)
	}
	return nil
}
