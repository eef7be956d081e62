package shmring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/origin"
)

// Dir is the direction of a captured packet relative to the forwarder.
type Dir uint8

const (
	DirUnknown Dir = 0
	DirIngress Dir = 1 // as received
	DirEgress  Dir = 2 // as sent
	DirInline  Dir = 3 // rewritten to show the end hosts to each other
)

// ProducerMode says what Write does when a lossless consumer has not freed room.
type ProducerMode int

const (
	// Live drops the packet and counts the drop: a NIC cannot wait.
	Live ProducerMode = iota
	// Blocking waits for room: a file reader has all the time it wants.
	Blocking
)

// Producer appends records. It is not safe for concurrent use: there is one
// producer per ring, and one goroutine drives it.
type Producer struct {
	r    *Ring
	data []byte
	size uint64
	mask uint64
	mode ProducerMode

	head    uint64 // local head: records up to here are written, maybe not published
	reserve uint64 // last value stored in the shared reserve field
	tail    uint64 // cached minimum of the lossless cursors
	seq     uint64 // seq of the next record

	lossless []*atomicU64 // cursors of the lossless slots
	lossyDel []*atomicU64 // delivered words of the lossy slots: see fenceLossy
	sink     uint64       // what fenceLossy loaded; kept so the loads are not dead code
	headF    *atomicU64
	reserveF *atomicU64
	nextSeqF *atomicU64
	writtenF *atomicU64
	dropsF   *atomicU64
	dropBF   *atomicU64

	written, drops, dropBytes uint64 // local counters, published by Publish
	abort                     atomicU32
}

// NewProducer attaches the (single) producer. A producer left attached by a
// process that died is taken over: the ring's head and seq continue.
func (r *Ring) NewProducer(mode ProducerMode) (*Producer, error) {
	if err := r.producerOwner().claim("producer", r.path); err != nil {
		return nil, err
	}
	// After the claim: a second producer is told the ring is taken before
	// it spends time on the mapping.
	if err := r.populate(); err != nil {
		r.producerOwner().release()
		return nil, err
	}
	p := &Producer{
		r: r, data: r.data, size: r.size, mask: r.mask, mode: mode,
		headF: u64(r.mem, offHead), reserveF: u64(r.mem, offReserve), nextSeqF: u64(r.mem, offNextSeq),
		writtenF: u64(r.mem, offWritten), dropsF: u64(r.mem, offDrops), dropBF: u64(r.mem, offDropBytes),
	}
	// What the previous producer last published: the claim above observed
	// its release (or it is dead, its stores all done).
	p.head = p.headF.Load()
	p.reserve = p.reserveF.Load()
	if p.reserve < p.head {
		return nil, &CorruptError{Path: r.path, Pos: p.head, What: "reserve behind head"}
	}
	p.seq = p.nextSeqF.Load()
	p.written, p.drops, p.dropBytes = p.writtenF.Load(), p.dropsF.Load(), p.dropBF.Load()
	for i := 0; i < r.nslots; i++ {
		s := r.slot(i)
		if s.mode() == Lossless {
			c := s.field(slotCursor)
			if cur := c.Load(); cur > p.head {
				return nil, &CorruptError{Path: r.path, Pos: cur, What: fmt.Sprintf("consumer %q cursor beyond head %d", s.name(), p.head)}
			}
			p.lossless = append(p.lossless, c)
		} else {
			p.lossyDel = append(p.lossyDel, s.field(slotDeliv))
		}
	}
	// This producer writes up to the reserve a predecessor announced
	// (loaded above) without storing it again: the loads that order those
	// writes after the lossy consumers' checks are made here instead.
	p.fenceLossy()
	p.refreshTail()
	u32(r.mem, offClosed).Store(0) // attached again; pairs with the load in Consumer.fill
	return p, nil
}

// populate gives the ring's data pages to this mapping before the first
// record, so that Write never takes a page fault: a ring's memory (a
// hugetlbfs file, or tmpfs) is allocated and zeroed on first touch, which
// otherwise happens inside the datapath on the ring's first lap (20 % of
// fwd's time in a GWLB benchmark, in clear_page) and stalls the packets
// behind it. It also turns a filesystem too small for the ring (huge pages
// or /dev/shm used up since the ring was created) into an error now,
// instead of a SIGBUS mid-capture. MADV_POPULATE_WRITE (Linux 5.14) writes
// nothing: pages a predecessor filled keep their records. Older kernels
// refuse the advice (EINVAL), and then pages are touched as before. A ring
// in a file on disk (tests) is left alone: there the advice would dirty,
// and write back, every page of the file at once.
func (r *Ring) populate() error {
	var st unix.Statfs_t
	if r.f == nil || unix.Fstatfs(int(r.f.Fd()), &st) != nil || (uint32(st.Type) != hugetlbfs && uint32(st.Type) != unix.TMPFS_MAGIC) {
		return nil
	}
	// The whole mapping: on hugetlbfs the advice takes huge-page-aligned
	// bounds only, and the data starts a page after the header.
	switch err := unix.Madvise(r.mem, unix.MADV_POPULATE_WRITE); {
	case err == nil:
		return nil
	case errors.Is(err, unix.EFAULT), errors.Is(err, unix.ENOMEM):
		// A page that could not be had (the fault failed: SIGBUS, as a
		// write would have met), or memory itself.
		return fmt.Errorf("ring %q: its %d bytes of memory cannot be had (%v): the filesystem that holds it (huge pages, or /dev/shm) has less room than the ring", r.path, len(r.mem), err)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EAGAIN):
		// The advice unknown (before 5.14) or refused (a sandbox): pages
		// are touched by the records, as before.
		return nil
	default:
		return fmt.Errorf("ring %q: populating its %d bytes: %w", r.path, len(r.mem), err)
	}
}

func (p *Producer) refreshTail() {
	t := p.head
	for _, c := range p.lossless {
		if v := c.Load(); v < t { // load-acquire; pairs with the store in Consumer.CommitAt
			t = v
		}
	}
	p.tail = t
}

// Write appends one record and returns its seq. It returns ok=false when the
// packet was dropped for lack of room (Live mode; counted) or Abort was called
// while waiting (Blocking mode). data longer than the ring's max caplen is
// cut to it. The record is visible to consumers after the next Publish.
//
// Write never allocates and never makes a system call in Live mode.
func (p *Producer) Write(ts int64, wireLen uint32, port uint16, dir Dir, rule uint32, data []byte) (seq uint64, ok bool) {
	return p.WriteOrigin(ts, wireLen, port, dir, rule, nil, data)
}

// WriteOrigin is Write for a packet that came through a tunnel: o (nil or
// kind None: none) is kept after the packet bytes (FORMAT). Like Write, it
// never allocates.
func (p *Producer) WriteOrigin(ts int64, wireLen uint32, port uint16, dir Dir, rule uint32, o *origin.Origin, data []byte) (seq uint64, ok bool) {
	if uint64(len(data)) > uint64(p.r.maxCaplen) {
		data = data[:p.r.maxCaplen]
	}
	var ob []byte
	okind := uint64(0)
	if o != nil && o.Kind != origin.None {
		ob, okind = o.B[:min(int(o.N), origin.Max)], uint64(o.Kind)
	}
	rl := align8(recHdrSize + uint64(len(data)) + uint64(len(ob)))
	off := p.head & p.mask
	need := rl
	pad := uint64(0)
	if off+rl > p.size {
		pad = p.size - off
		need += pad
	}
	if p.head+need-p.tail > p.size {
		p.refreshTail()
		for i := 0; p.head+need-p.tail > p.size; i++ {
			if p.mode == Live {
				p.drops++
				p.dropBytes += uint64(len(data))
				return 0, false
			}
			if !p.waitRoom(i) {
				return 0, false
			}
		}
	}
	if end := p.head + need; end > p.reserve {
		// Announce the region before touching it; lossy readers of the old
		// lap check this after reading. Step ahead so this store is rare.
		r := p.reserve + p.size/16
		if r < end {
			r = end
		}
		p.reserve = r
		p.reserveF.Store(r) // pairs with the load in Consumer.lapped
		p.fenceLossy()
	}
	le := binary.LittleEndian
	if pad != 0 {
		le.PutUint32(p.data[off:], uint32(pad)|padFlag)
		p.head += pad
		off = 0
	}
	rec := p.data[off : off+rl]
	_ = rec[recHdrSize-1]
	// Word stores (this is the capture hot path): the padding, at most 7
	// bytes, lies in the record's last word, zeroed first and then partly
	// overwritten by the data (or by the header, for an empty packet).
	le.PutUint64(rec[rl-8:], 0)
	le.PutUint64(rec[0:], rl|uint64(len(data))<<32)
	le.PutUint64(rec[8:], p.seq)
	le.PutUint64(rec[16:], uint64(ts))
	le.PutUint64(rec[24:], uint64(wireLen)|uint64(port)<<32|uint64(dir)<<48|okind<<56)
	le.PutUint64(rec[32:], uint64(rule)|uint64(len(ob))<<32)
	copy(rec[recHdrSize:], data)
	copy(rec[recHdrSize+uint64(len(data)):], ob)
	p.head += rl
	seq = p.seq
	p.seq++
	p.written++
	return seq, true
}

// fenceLossy loads each lossy slot's delivered word, which its consumer
// stores just before it loads reserve (Consumer.lapped). It comes after
// every store to reserve and before any byte under the new reserve is
// written: the producer's half of the overrun check's ordering, argued in
// MEMORY ORDERING (doc.go). The values do not matter, the loads do. Called
// once per DataSize/16 bytes written, with one load per lossy slot.
func (p *Producer) fenceLossy() {
	for _, d := range p.lossyDel {
		p.sink += d.Load() // pairs with the store in Consumer.lapped
	}
}

// waitRoom is one step of waiting for a lossless consumer to free room: the
// first step publishes what is pending (the consumer may be waiting for it),
// later ones back off from yielding to sleeping. It returns false when Abort
// is called.
func (p *Producer) waitRoom(i int) bool {
	if i == 0 {
		p.Publish()
	}
	if p.abort.Load() != 0 {
		return false
	}
	if i < 64 {
		runtime.Gosched()
	} else {
		time.Sleep(50 * time.Microsecond)
	}
	p.refreshTail()
	return true
}

// Abort makes a Write that waits for room give up. Safe from any goroutine.
func (p *Producer) Abort() { p.abort.Store(1) }

// Publish makes every record written so far visible to consumers.
func (p *Producer) Publish() {
	// Before head: whoever loads head, then these, sees them at least as
	// new as that head (NewProducer, Info).
	p.nextSeqF.Store(p.seq)
	p.writtenF.Store(p.written)
	p.dropsF.Store(p.drops)
	p.dropBF.Store(p.dropBytes)
	p.headF.Store(p.head) // store-release; pairs with the load in Consumer.fill
}

// Stats are the producer's own counters.
func (p *Producer) Stats() (written, drops uint64) { return p.written, p.drops }

// NextSeq is the seq the next record will get.
func (p *Producer) NextSeq() uint64 { return p.seq }

// Close publishes, marks the ring closed so batch consumers can finish, and
// releases the producer role.
func (p *Producer) Close() {
	p.Publish()
	u32(p.r.mem, offClosed).Store(1) // after the Publish; pairs with the load in Consumer.fill
	p.r.producerOwner().release()
}

// Detach releases the producer role without marking the ring closed (a
// producer that will come back, such as a restarting forwarder).
func (p *Producer) Detach() {
	p.Publish()
	p.r.producerOwner().release()
}
