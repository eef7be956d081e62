package shmring

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/fmcap/fmcap/internal/origin"
)

// Record is one packet as read from the ring. Data points into the shared
// mapping: for a lossless consumer it stays valid until the consumer commits
// past it; for a lossy consumer, until the next Verify says whether it was
// intact.
type Record struct {
	Seq     uint64
	TS      int64 // capture time, Unix ns
	WireLen uint32
	Port    uint16
	Dir     Dir
	Rule    uint32
	Data    []byte
	// OriginKind and Origin: the tunnel the packet came through (kind
	// origin.None and no bytes when none), the blob as fwd wrote it,
	// pointing into the mapping like Data. origin.Parse checks it.
	OriginKind origin.Kind
	Origin     []byte
	End        uint64 // absolute position just past this record: what CommitAt takes
}

// Consumer reads the ring through one declared slot. Not safe for concurrent
// use, except CommitAt, which the goroutine that makes data durable may call
// while another goroutine reads.
type Consumer struct {
	r         *Ring
	data      []byte
	size      uint64
	mask      uint64
	maxCaplen uint32
	lossy     bool
	name      string
	s         slot

	pos  uint64 // next record to read
	seq  uint64 // seq expected there
	head uint64 // producer head as last loaded

	// lossy only: records in [verified, pos) have not been checked against
	// the producer's reserve yet.
	verified    uint64
	verifiedSeq uint64
	jumped      bool // resynchronised after an overrun; the next record closes the gap
	gapLo       uint64
	gapHi       uint64
	gap         bool

	delivered uint64

	headF, reserveF         *atomicU64
	closedF                 *atomicU32
	cursorF, curSeqF        *atomicU64
	deliveredF, overrunsF   *atomicU64
	missedF, missLo, missHi *atomicU64
	own                     owner
}

// Attach takes the consumer slot declared under name and resumes from its
// persistent cursor.
func (r *Ring) Attach(name string) (*Consumer, error) {
	idx := -1
	for i := 0; i < r.nslots; i++ {
		if r.slot(i).name() == name {
			idx = i
			break
		}
	}
	if idx < 0 {
		var names []string
		for i := 0; i < r.nslots; i++ {
			names = append(names, r.slot(i).name())
		}
		return nil, fmt.Errorf("ring %q has no consumer %q (declared: %v; consumers are declared by fmring create)", r.path, name, names)
	}
	s := r.slot(idx)
	c := &Consumer{
		r: r, data: r.data, size: r.size, mask: r.mask, maxCaplen: r.maxCaplen,
		lossy: s.mode() == Lossy, name: name, s: s,
		headF: u64(r.mem, offHead), reserveF: u64(r.mem, offReserve), closedF: u32(r.mem, offClosed),
		cursorF: s.field(slotCursor), curSeqF: s.field(slotCurSeq), deliveredF: s.field(slotDeliv),
		overrunsF: s.field(slotOverr), missedF: s.field(slotMissed), missLo: s.field(slotMissLo),
		missHi: s.field(slotMissHi), own: s.owner(),
	}
	if err := c.own.claim("consumer "+name, r.path); err != nil {
		return nil, err
	}
	// As the slot's last holder committed them: the claim above observed
	// its release (or it is dead, its stores all done). Cursor first: it is
	// stored last (CommitAt).
	c.pos = c.cursorF.Load()
	c.seq = c.curSeqF.Load()
	c.head = c.pos
	c.verified, c.verifiedSeq = c.pos, c.seq
	c.delivered = c.deliveredF.Load()
	if h := c.headF.Load(); c.pos > h || c.pos&7 != 0 {
		c.own.release()
		return nil, &CorruptError{Path: r.path, Pos: c.pos, What: fmt.Sprintf("consumer %q cursor beyond head %d or misaligned", name, h)}
	}
	return c, nil
}

// Name is the slot's name.
func (c *Consumer) Name() string { return c.name }

// Lossy reports the slot's mode.
func (c *Consumer) Lossy() bool { return c.lossy }

// NextSeq is the seq of the next record this consumer expects.
func (c *Consumer) NextSeq() uint64 { return c.seq }

// Next returns the next record; ErrEmpty when there is none yet; io.EOF when
// the producer has closed the ring and everything was read; ErrOverrun
// (lossy only) when the producer lapped this consumer: records returned since
// the last Verify are void, and reading goes on from the newest data.
// Next never allocates.
func (c *Consumer) Next() (Record, error) {
	c.gap = false
	for {
		if c.pos == c.head {
			if err := c.fill(); err != nil {
				return Record{}, err
			}
		}
		off := c.pos & c.mask
		le := binary.LittleEndian
		w := le.Uint32(c.data[off:])
		if w&padFlag != 0 {
			if uint64(w&^padFlag) != c.size-off {
				if err := c.bad("pad length does not reach the end of the data area"); err != nil {
					return Record{}, err
				}
				continue
			}
			c.pos += c.size - off
			continue
		}
		rl := uint64(w)
		caplen := le.Uint32(c.data[off+4:])
		olen := uint64(0)
		if off+recHdrSize <= c.size {
			olen = uint64(c.data[off+recOriginLen])
		}
		if rl < recHdrSize || off+rl > c.size || caplen > c.maxCaplen || olen > origin.Max || align8(recHdrSize+uint64(caplen)+olen) != rl || c.pos+rl > c.head {
			if err := c.bad(fmt.Sprintf("record length %d, caplen %d, origin length %d", rl, caplen, olen)); err != nil {
				return Record{}, err
			}
			continue
		}
		rec := Record{
			Seq:     le.Uint64(c.data[off+8:]),
			TS:      int64(le.Uint64(c.data[off+16:])),
			WireLen: le.Uint32(c.data[off+24:]),
			Port:    le.Uint16(c.data[off+28:]),
			Dir:     Dir(c.data[off+30]),
			Rule:    le.Uint32(c.data[off+32:]),
			Data:    c.data[off+recHdrSize : off+recHdrSize+uint64(caplen) : off+recHdrSize+uint64(caplen)],
			End:     c.pos + rl,
		}
		if olen != 0 {
			ob := off + recHdrSize + uint64(caplen)
			rec.OriginKind, rec.Origin = origin.Kind(c.data[off+recOriginKind]), c.data[ob:ob+olen:ob+olen]
		}
		if c.jumped {
			if rec.Seq < c.seq {
				if err := c.bad(fmt.Sprintf("seq %d after a resync expecting at least %d", rec.Seq, c.seq)); err != nil {
					return Record{}, err
				}
				continue
			}
			if rec.Seq > c.seq {
				c.gap, c.gapLo, c.gapHi = true, c.seq, rec.Seq-1
				c.missedF.Add(rec.Seq - c.seq) // these three for Info only: no pair
				c.missLo.Store(c.gapLo)
				c.missHi.Store(c.gapHi)
				// The gap is reported: a later overrun before the next
				// Verify must not report it again, so what is unverified
				// now starts at this record.
				c.verifiedSeq = rec.Seq
			}
			c.jumped = false
		} else if rec.Seq != c.seq {
			if err := c.bad(fmt.Sprintf("seq %d, want %d", rec.Seq, c.seq)); err != nil {
				return Record{}, err
			}
			continue
		}
		// Start loading what comes prefetchAhead bytes on while this
		// record is being used: a consumer reading a ring the producer
		// filled a while ago (a lagging or restarted consumer) otherwise
		// waits for memory at every record, the next one's place being
		// known only from this one's length.
		if a := off + prefetchAhead; a+rl <= c.size {
			prefetchBytes(c.data[a : a+rl])
		}
		c.pos = rec.End
		c.seq = rec.Seq + 1
		if !c.lossy {
			c.delivered++
		}
		return rec, nil
	}
}

// fill loads the producer's head once per batch.
func (c *Consumer) fill() error {
	c.deliveredF.Store(c.delivered) // for Info
	h := c.headF.Load()             // load-acquire; pairs with the store in Producer.Publish
	if h == c.pos {
		if c.closedF.Load() == 0 { // pairs with the store in Producer.Close
			return ErrEmpty
		}
		// Closed is set after the last Publish: look at head once more.
		if h = c.headF.Load(); h == c.pos {
			return io.EOF
		}
	}
	if h < c.pos {
		return &CorruptError{Path: c.r.path, Pos: c.pos, What: fmt.Sprintf("head %d went backwards", h)}
	}
	c.head = h
	if c.lossy && c.lapped() {
		c.overrun()
		return ErrOverrun
	}
	return nil
}

// lapped reports whether the producer may have written over [verified, pos).
// Data at absolute position x is intact while reserve <= x + size.
//
// The store before the load is what makes a "no" true of plain reads:
// every read of the records since verified (this package's and the
// caller's) is sequenced before it, and a producer that stores a reserve
// this load does not see then loads delivered (Producer.fenceLossy), sees
// this store, and so writes over those records only after they were read.
// Without it nothing orders the plain reads before the load of reserve:
// arm64 may satisfy them after it, and the Go memory model allows them to
// see the overwrite. The proof is in MEMORY ORDERING (doc.go).
func (c *Consumer) lapped() bool {
	c.deliveredF.Store(c.delivered)              // pairs with the load in Producer.fenceLossy
	return c.reserveF.Load() > c.verified+c.size // pairs with the store in Producer.Write
}

// bad handles a record that fails a check. For a lossy consumer whose data
// was overwritten under it that is an overrun; otherwise it is corruption.
func (c *Consumer) bad(what string) error {
	if c.lossy && c.lapped() {
		c.overrun()
		return ErrOverrun
	}
	return &CorruptError{Path: c.r.path, Pos: c.pos, What: fmt.Sprintf("consumer %q: %s", c.name, what)}
}

// overrun voids what was read since the last Verify and jumps to the head.
func (c *Consumer) overrun() {
	c.overrunsF.Add(1) // for Info
	c.seq = c.verifiedSeq
	c.head = c.headF.Load() // pairs with the store in Producer.Publish
	c.pos = c.head
	c.verified = c.pos
	c.jumped = true
}

// Gap reports, right after Next returned a record, the seq range that this
// lossy consumer missed just before it. The range is also added to the
// slot's counters.
func (c *Consumer) Gap() (first, last uint64, ok bool) { return c.gapLo, c.gapHi, c.gap }

// Verify tells a lossy consumer whether the records Next returned since the
// previous Verify were intact when read. ErrOverrun means they were not:
// drop what was derived from them; their seqs are reported by Gap with the
// next record. Call it once per batch; for a lossless consumer it is a no-op.
func (c *Consumer) Verify() error {
	if !c.lossy {
		return nil
	}
	if c.lapped() {
		c.overrun()
		return ErrOverrun
	}
	if !c.jumped {
		c.delivered += c.seq - c.verifiedSeq
		c.verified, c.verifiedSeq = c.pos, c.seq
	}
	return nil
}

// Commit stores the cursor: everything read (lossless) or verified (lossy)
// so far is released to the producer and survives a restart.
func (c *Consumer) Commit() {
	c.deliveredF.Store(c.delivered)
	if c.lossy {
		c.CommitAt(c.verified, c.verifiedSeq)
		return
	}
	c.CommitAt(c.pos, c.seq)
}

// CommitAt stores the cursor at pos (a Record.End) with nextSeq the seq of
// the record there. A writer calls it once the records before pos are stored.
func (c *Consumer) CommitAt(pos, nextSeq uint64) {
	c.curSeqF.Store(nextSeq) // before cursor, which Attach loads first
	c.cursorF.Store(pos)     // store-release; pairs with the load in Producer.refreshTail
}

// Close releases the slot for another process. It does not commit.
func (c *Consumer) Close() { c.own.release() }

// prefetchAhead is how far ahead of the record being read Next prefetches:
// a few records, so that the lines have arrived when their turn comes.
const prefetchAhead = 2048
