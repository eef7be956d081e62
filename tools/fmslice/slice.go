package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/store/chunk"
)

// sliceReq is one extraction: a half-open time range and an optional filter.
type sliceReq struct {
	store  string
	remote *remoteStore // store is s3://… (store.go); nil: a local directory
	from   int64
	to     int64
	filter *bpf // nil: every packet
	// need says whether a frame holding seqs first..last may hold a match
	// (the index's answer, query.LoadIndex); nil: every frame in the range.
	need func(first, last uint64) bool
	// must gives the seqs of first..last that may hold a match (appended to
	// out); nil: every one.
	must func(first, last uint64, out []query.SeqRange) []query.SeqRange
	// tick, when set, is told how far the slice has got: the packets
	// written and the capture time of the last frame read (for progress).
	tick func(packets int, ts int64)
	// Origins (origin.go): meta says to read each packet's stored
	// metadata (pcapng output or a selection); sel, when set, selects by
	// it; metaBad counts frames whose metadata was unreadable; ports
	// names fwd's ports (--config), by index.
	meta bool
	sel  *selection
	// runs: the output is plain pcap (emitRuns), so a frame whose
	// packets are all in the range and all go out is picked as one hit
	// spanning its records (hit.count packets), not a hit a packet.
	runs    bool
	metaBad atomic.Int64
	ports   []string
}

// result says what a query read, and what it could not.
type result struct {
	chunks, frames, packets int
	matchFrames             int // frames read that held a packet going out (--explain)
	wholeFrames             int // frames written as their stored records (sliceReq.runs)
	skipped                 int // frames in the range the index said to skip
	decompressed            int64
	damaged                 []error      // frames or chunks skipped: the output is incomplete
	repaired                []error      // chunks whose tables were rebuilt, every frame found: complete
	rebuilt                 []chunk.Info // chunks whose tables were rebuilt: their frames' seqs are unknown
	gone                    int          // chunks retention removed while the query ran
	matchGroups             *matchGroups // --explain: the groups holding a match
}

type sink interface {
	write(ts int64, wireLen uint32, data []byte) error
}

// slice extracts q to out. It opens only chunks whose names say they overlap
// the range (and the chunk being written), and only frames whose frame-table
// times overlap it; packets come out in capture (seq) order. A damaged frame
// or chunk is reported in the result and skipped; only trouble with the
// output or the store as a whole is an error.
func slice(q *sliceReq, out sink, dec *zstd.Decoder) (*result, error) {
	if q.remote != nil {
		return sliceList(q, q.remote.list, out, dec)
	}
	st, err := os.Stat(q.store)
	if err != nil {
		return nil, fmt.Errorf("store %q: %w", q.store, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("store %q is not a directory", q.store)
	}
	list, err := chunk.List(q.store)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("store %q holds no chunks (is the writer running, and is this its --store?)", q.store)
	}
	return sliceList(q, list, out, dec)
}

// sliceList is slice over the chunks of list (the store's listing, which
// may be out of date by the time a chunk is opened).
func sliceList(q *sliceReq, list []chunk.Info, out sink, dec *zstd.Decoder) (*result, error) {
	res := &result{}
	pk := newPicker(q)
	p := newPipeline(pk)
	go p.feed(func(send func(item) bool) { feedChunks(q, list, dec, send) })
	var werr error
	for it := range p.pending {
		if it.chunk {
			res.chunks++
			res.skipped += it.skipped
		}
		switch {
		case it.gone:
			res.gone++
		case it.note != nil && it.repaired:
			res.repaired = append(res.repaired, it.note)
		case it.note != nil:
			res.damaged = append(res.damaged, it.note)
		}
		if it.rebuilt {
			res.rebuilt = append(res.rebuilt, it.rd.Info)
		}
		if it.done != nil {
			r := <-it.done
			if werr == nil {
				werr = emitFrames(res, out, r)
				if werr != nil {
					p.stop()
				}
			}
			if q.tick != nil && len(it.ents) > 0 {
				q.tick(res.packets, it.ents[len(it.ents)-1].MaxTS)
			}
			p.release(r)
		}
		if it.last {
			it.rd.Close()
		}
	}
	p.wait()
	return res, werr
}

// emitFrames writes the packets picked from a batch of frames and counts
// them, and what was damaged.
func emitFrames(res *result, out sink, r frameResult) error {
	res.frames += r.frames
	res.matchFrames += r.matched
	res.wholeFrames += r.whole
	res.decompressed += int64(len(r.buf))
	res.damaged = append(res.damaged, r.errs...)
	if ps, ok := out.(*pcapSink); ok {
		return emitRuns(res, ps, r)
	}
	for i := range r.hits {
		h := &r.hits[i]
		data := r.buf[h.off : h.off+h.n]
		var err error
		switch o := out.(type) { // what the sink is told beyond the packet
		case seqMetaSink:
			err = o.writeSeqMeta(h.seq, h.ts, h.wire, data, &h.pm, h.known)
		case metaSink:
			err = o.writeMeta(h.ts, h.wire, data, &h.pm, h.known)
		case seqSink:
			err = o.writeSeq(h.seq, h.ts, h.wire, data)
		default:
			err = out.write(h.ts, h.wire, data)
		}
		if err != nil {
			return err
		}
	}
	res.packets += len(r.hits)
	return nil
}

// recSize is a pcap record header's size.
const recSize = 16

// emitRuns writes the hits of r to plain pcap output as runs of records:
// packets next to each other in the decompressed frames (a time slice's
// whole frames, a flow's trains) go out as their stored records in one
// write, instead of a record made and copied per packet. A hit's record
// header is the recSize bytes before its data (chunk.Packets).
func emitRuns(res *result, ps *pcapSink, r frameResult) error {
	lo, hi := 0, 0 // the run of records not yet written: r.buf[lo:hi]
	for _, h := range r.hits {
		if h.count > 1 {
			res.packets += int(h.count) - 1 // and one below, as every hit
		}
		start := int(h.off) - recSize
		if start != hi || hi == lo {
			if hi > lo {
				if err := ps.records(r.buf[lo:hi]); err != nil {
					return err
				}
			}
			lo = start
		}
		hi = int(h.off + h.n)
	}
	if hi > lo {
		if err := ps.records(r.buf[lo:hi]); err != nil {
			return err
		}
	}
	res.packets += len(r.hits)
	return nil
}

// feedChunks opens the chunks of list that overlap q's range, in order,
// chooses their frames and sends them (and what it has to report) down the
// pipeline. send returning false means stop.
func feedChunks(q *sliceReq, list []chunk.Info, dec *zstd.Decoder, send func(item) bool) {
	for _, in := range list {
		if !in.Overlaps(q.from, q.to) {
			continue
		}
		var rd *chunk.Reader
		var want []int
		var ents []chunk.Frame
		skipped := 0
		if q.must != nil && q.remote == nil && in.MinTS >= q.from && in.MaxTS < q.to {
			// A chunk wholly inside the range, and an index: read only the
			// entries of the frames that hold candidates (see chunk.OpenLazy).
			rd, want, ents, skipped = lazyFrames(q, in, dec)
		} else if q.remote == nil {
			rd, want, ents, skipped = scanLazy(q, in, dec)
		}
		if rd == nil {
			var err error
			rd, err = q.openChunk(in, dec)
			if in.Open && errors.Is(err, os.ErrNotExist) {
				// Published while we were listing: read it under its final name.
				if in, err = republished(q.store, in.FirstSeq); err == nil {
					if !in.Overlaps(q.from, q.to) {
						continue
					}
					rd, err = chunk.OpenReader(q.store, in, dec)
				}
			}
			if err != nil {
				// A chunk retention removed since the listing is not damage:
				// the retention notice names what is gone.
				gone := errors.Is(err, os.ErrNotExist) && removedByRetention(q, in.FirstSeq)
				if !send(item{note: fmt.Errorf("chunk %q skipped: %w", in.Name, err), gone: gone}) {
					return
				}
				continue
			}
			var note error
			if rd.Note != "" {
				note = fmt.Errorf("chunk %q: %s", in.Name, rd.Note)
			}
			repaired := !rd.Lost // every frame known: a frame that reads gives all its packets
			for fi := range rd.Table.Frames {
				f := &rd.Table.Frames[fi]
				if !f.Overlaps(q.from, q.to) {
					continue
				}
				if q.need != nil && f.Count > 0 && !q.need(f.FirstSeq, f.LastSeq) {
					skipped++
					continue
				}
				want = append(want, fi)
				ents = append(ents, *f)
			}
			// A rebuilt table's frames have unknown seqs (Count 0): rd is
			// handed on with the note, for fmslice flows (see result.rebuilt).
			if note != nil && !send(item{note: note, repaired: repaired, rebuilt: true, rd: rd}) {
				rd.Close()
				return
			}
		}
		if !send(item{chunk: true, skipped: skipped, rd: rd, last: len(want) == 0}) {
			rd.Close() // not delivered: nobody else will
			return
		}
		q.prefetch(rd, ents)
		for k := 0; k < len(want); {
			// A batch: frames up to batchFrames or batchBytes, so that one
			// hand-off (feeder, worker, consumer) carries many frames.
			n, size := 0, 0
			for k+n < len(want) && n < batchFrames && (n == 0 || size+frameSize(ents[k+n]) <= batchBytes) {
				size += frameSize(ents[k+n])
				n++
			}
			if !send(item{rd: rd, fis: want[k : k+n], ents: ents[k : k+n], size: size, frame: true, last: k+n == len(want)}) {
				if k > 0 { // frames of it are in flight: the consumer closes it
					send(item{rd: rd, last: true, force: true})
				} else {
					rd.Close()
				}
				return
			}
			k += n
		}
	}
}

// removedByRetention says whether the retention log (read now) says the
// chunk starting at first was removed.
func removedByRetention(q *sliceReq, first uint64) bool {
	gone, _ := retentionRemovals(q.store, q.remote, true)
	for _, r := range gone {
		if r.FirstSeq <= first && first <= r.LastSeq {
			return true
		}
	}
	return false
}

func republished(dir string, first uint64) (chunk.Info, error) {
	list, err := chunk.List(dir)
	if err != nil {
		return chunk.Info{}, err
	}
	for _, in := range list {
		if in.FirstSeq == first && !in.Open {
			return in, nil
		}
	}
	return chunk.Info{}, fmt.Errorf("chunk with first seq %d vanished: %w", first, io.ErrUnexpectedEOF)
}

// hit is a packet picked from a frame: its seq (unknownSeq in a frame whose
// seqs are not known), time, wire length and where its bytes are in the
// frame.
type hit struct {
	seq    uint64
	ts     int64
	wire   uint32
	off, n uint32
	known  bool             // pm is the packet's stored metadata (sliceReq.meta)
	pm     chunk.PacketMeta // port, direction, rule, origin
	// count, when set, is the number of records the hit spans: a whole
	// frame's (sliceReq.runs); off and n then span their bytes but the
	// first record's header, and seq, ts and wire are not set. 0: one
	// packet, the fields as they say.
	count uint32
}

// metaSink is a sink that is also given each packet's stored metadata
// (pcapng output: interfaces by port and tunnel, direction, comments).
type metaSink interface {
	writeMeta(ts int64, wireLen uint32, data []byte, pm *chunk.PacketMeta, known bool) error
}

// unknownSeq is the seq of packets of frames whose seqs are not known (a
// frame table rebuilt from the seek table or by scanning).
const unknownSeq = ^uint64(0)

// seqSink is a sink that is also told each packet's seq (fmslice flows).
type seqSink interface {
	writeSeq(seq uint64, ts int64, wireLen uint32, data []byte) error
}

// seqMetaSink is a sink told each packet's seq and stored metadata (fmslice
// flows --by-origin).
type seqMetaSink interface {
	writeSeqMeta(seq uint64, ts int64, wireLen uint32, data []byte, pm *chunk.PacketMeta, known bool) error
}

// picker chooses the packets of a frame that go out: in the range, among
// the index's candidates, matching the filter (one compiled filter, read
// concurrently). Each worker has its own scratch buffers (pick's w).
type picker struct {
	q       *sliceReq
	batches []batch            // one per worker
	must    [][]query.SeqRange // one per worker
	metas   []chunk.Meta       // one per worker
}

func newPicker(q *sliceReq) *picker {
	n := runtime.GOMAXPROCS(0)
	return &picker{q: q, batches: make([]batch, n), must: make([][]query.SeqRange, n), metas: make([]chunk.Meta, n)}
}

// pick appends to hits the packets of frame f (decompressed in buf; first:
// frame 0 of its chunk) that go out; a damaged frame gives those before
// the damage and the error.
func (pk *picker) pick(w int, f *chunk.Frame, buf, meta []byte, first bool, hits []hit) ([]hit, error) {
	q := pk.q
	var mi chunk.MetaIter
	known := false
	if q.meta && meta != nil {
		m := &pk.metas[w]
		if err := m.Parse(meta); err == nil && (f.Count == 0 || m.Count() == f.Count) {
			mi, known = m.Iter(), true
		} else {
			q.metaBad.Add(1)
		}
	}
	if q.runs && q.must == nil && q.filter == nil && q.sel == nil && f.MinTS >= q.from && f.MaxTS < q.to {
		// Every packet of the frame goes out (its entry's times, checked
		// by the table's CRC, are in the range): one hit for them all.
		// A frame whose records do not check out is walked below, which
		// picks the packets before the damage and reports it.
		if n, at, err := chunk.Records(buf, first); err == nil && n > 0 {
			return append(hits, hit{off: uint32(at + recSize), n: uint32(len(buf) - at - recSize), count: uint32(n)}), nil
		}
	}
	var must []query.SeqRange
	useIndex := q.must != nil && f.Count > 0 // Count 0: a frame whose seqs are unknown (table rebuilt from the seek table)
	if useIndex {
		pk.must[w] = q.must(f.FirstSeq, f.LastSeq, pk.must[w])
		must = pk.must[w]
	}
	seq, next := f.FirstSeq, 0
	start := len(hits)
	perr := chunk.Packets(buf, first, func(p chunk.Packet) bool {
		s := seq
		seq++
		var pm chunk.PacketMeta
		if known && !mi.Next(&pm) {
			known = false // fewer entries than packets: Parse checked the count, so never
		}
		if useIndex {
			for next < len(must) && must[next].Hi < s {
				next++
			}
			if next == len(must) {
				return false // no candidate left in this frame
			}
			if must[next].Lo > s {
				return true // no filter term the index knows can match it
			}
		}
		if p.TS < q.from || p.TS >= q.to {
			return true
		}
		off := uint32(p.Off)
		hs := s
		if f.Count == 0 {
			hs = unknownSeq
		}
		if q.sel != nil && !q.sel.match(&pm, known) {
			return true
		}
		hits = append(hits, hit{seq: hs, ts: p.TS, wire: p.WireLen, off: off, n: uint32(len(p.Data)), known: known, pm: pm})
		return true
	})
	if q.filter != nil && len(hits) > start {
		b := &pk.batches[w]
		b.reset()
		for _, h := range hits[start:] {
			b.add(h.off, h.n, h.wire)
		}
		ok := q.filter.match(buf, b)
		kept := hits[:start]
		for i, h := range hits[start:] {
			if ok[i] != 0 {
				kept = append(kept, h)
			}
		}
		hits = kept
	}
	return hits, perr
}

// Frames go down the pipeline in batches of up to batchFrames frames of one
// chunk, and batchBytes decompressed (a batch of one larger frame is
// allowed): a hand-off between goroutines costs about as much as
// decompressing a small frame (wakeups, futexes), and a selective query
// reads thousands of 32 KiB frames.
const (
	batchFrames = 16
	batchBytes  = 256 << 10
)

// frameSize is what a frame's table entry says it decompresses to, as far
// as it can be believed before reading the frame: an entry from a seek
// table (which has no CRC) or from scanning a damaged chunk may claim
// gigabytes, and AppendFrame refuses anything over chunk.MaxFrame.
func frameSize(f chunk.Frame) int { return int(min(f.DSize, chunk.MaxFrame)) }

// item is one step of a slice, in output order: a chunk reached (count it,
// maybe with its skipped frames), something to report, or a batch of
// frames to read. last: the consumer closes rd after this item.
type item struct {
	rd       *chunk.Reader
	fis      []int         // frames to read, in order
	ents     []chunk.Frame // their table entries
	size     int           // the bytes they decompress to, as far as believed (frameSize)
	frame    bool
	last     bool
	force    bool // sent after a stop: close rd, nothing else
	chunk    bool
	skipped  int
	note     error
	repaired bool             // note: a table rebuilt with every frame found (a warning)
	rebuilt  bool             // note: rd\'s table was rebuilt (its frames\' seqs are unknown)
	gone     bool             // note: a chunk retention removed meanwhile (not damage)
	b        frameResult      // the frame's buffers, taken by the feeder
	done     chan frameResult // the worker's result
}

// frameResult is what a worker made of a batch: the frames' bytes one
// after the other, the packets picked (offsets into buf), how many frames
// it read whole, and what was damaged.
type frameResult struct {
	buf     []byte
	hits    []hit
	frames  int
	matched int // frames of frames with a packet in hits
	whole   int // frames picked as one hit (sliceReq.runs)
	errs    []error
}

// pipeline decompresses frames on every core, where the picker also picks
// their packets, and hands them back in order: one feeder (chunks opened and
// frames chosen while earlier frames decompress), GOMAXPROCS workers, and
// the consumer ranging over pending. Buffers are taken in order by the
// feeder, so a frame never waits for a buffer held by a later one.
type pipeline struct {
	pk      *picker
	free    chan frameResult // frame buffers (buf, hits), reused all along
	jobs    chan item
	pending chan item
	quit    chan struct{}
	stopped bool
	wg      sync.WaitGroup
}

func newPipeline(pk *picker) *pipeline {
	n := len(pk.batches) // the picker's per-worker state decides the workers
	// Three frame buffers a worker: one being filled, one waiting for the
	// consumer and one being written out keep every core busy. Each buffer
	// is fresh memory the kernel faults in and zeroes (~70 pages for a
	// batch, and its hits): with eight a worker, a one-minute slice faulted
	// in 4.6 MiB of them, a third of its page faults (perf record -e
	// page-faults), and was 5-10 % slower (bench/slice.sh).
	p := &pipeline{pk: pk, free: make(chan frameResult, 3*n), jobs: make(chan item, 8*n), pending: make(chan item, 8*n), quit: make(chan struct{})}
	for i := 0; i < cap(p.free); i++ {
		p.free <- frameResult{}
	}
	for w := 0; w < n; w++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var cbuf []byte
			for it := range p.jobs {
				r := it.b
				if need := it.size + 64; cap(r.buf) < need { // 64: AppendFrame's slack for the decoder
					// One buffer for the batch, sized once: growing it
					// frame by frame copied and faulted in fresh pages.
					r.buf = make([]byte, 0, max(need, batchBytes+64))
				}
				for k, fi := range it.fis {
					f := it.ents[k]
					start := len(r.buf)
					out, meta, c, err := it.rd.AppendFrameMeta(fi, f, r.buf, cbuf)
					cbuf = c
					if err != nil {
						r.errs = append(r.errs, err)
						continue
					}
					r.buf = out
					r.frames++
					if len(out) == start {
						continue
					}
					n := len(r.hits)
					var perr error
					r.hits, perr = pk.pick(w, &f, out[start:], meta, fi == 0, r.hits)
					for j := n; j < len(r.hits); j++ {
						r.hits[j].off += uint32(start)
					}
					if len(r.hits) > n {
						r.matched++
						if r.hits[n].count > 0 {
							r.whole++
						}
					}
					if perr != nil {
						r.errs = append(r.errs, &chunk.FrameError{Chunk: it.rd.Info.Name, Index: fi, Err: perr})
					}
				}
				it.done <- r
			}
		}()
	}
	return p
}

// feed runs fn, which sends items; it closes the pipeline's inputs after.
func (p *pipeline) feed(fn func(send func(item) bool)) {
	defer close(p.jobs)
	defer close(p.pending)
	fn(func(it item) bool {
		if it.force {
			p.pending <- it
			return true
		}
		if it.frame {
			select {
			case it.b = <-p.free:
			case <-p.quit:
				return false
			}
			it.done = make(chan frameResult, 1)
		}
		select {
		case p.pending <- it:
		case <-p.quit:
			if it.frame {
				p.release(it.b)
			}
			return false
		}
		if it.frame {
			p.jobs <- it
		}
		return true
	})
}

// release returns a frame's buffers. One grown past a few batches (frames
// larger than batchBytes, or unknown sizes) is dropped, not kept for the
// rest of the slice.
func (p *pipeline) release(r frameResult) {
	if cap(r.buf) > 4*batchBytes {
		r.buf = nil
	}
	select {
	case p.free <- frameResult{buf: r.buf[:0], hits: r.hits[:0], errs: r.errs[:0]}:
	default:
	}
}

func (p *pipeline) stop() {
	if !p.stopped {
		p.stopped = true
		close(p.quit)
	}
}

func (p *pipeline) wait() { p.wg.Wait() }

// scanLazy opens a chunk for random access and picks the frames whose
// entries overlap q's range (and that the index, if any, says may match),
// looking at every entry in the mapped table. For a time slice this is
// what OpenReader's whole table gives, without decoding it into a fresh
// slice and reading it and the seek table into fresh buffers: that was a
// quarter of a one-minute slice's page faults (a table of 4 000 to 80 000
// entries a chunk). rd is nil when the chunk cannot be read that way or
// an entry is damaged: the caller then reads the chunk the ordinary way,
// which reports and works around the damage.
func scanLazy(q *sliceReq, in chunk.Info, dec *zstd.Decoder) (rd *chunk.Reader, want []int, ents []chunk.Frame, skipped int) {
	rd, err := chunk.OpenLazy(q.store, in, dec)
	if err != nil {
		return nil, nil, nil, 0
	}
	var prev chunk.Frame
	for i := range rd.NumFrames() {
		f, err := rd.Frame(i)
		// Frame checks each entry on its own; what the full reader also
		// checks across entries (the first frame at the start, each next
		// to the one before) is checked here, so that a table whose
		// entries are whole but do not fit together is read the ordinary
		// way too, with its warning.
		if err != nil || (i == 0 && f.Off != 0) || (i > 0 && !f.Follows(&prev)) {
			rd.Close()
			return nil, nil, nil, 0
		}
		prev = f
		if !f.Overlaps(q.from, q.to) {
			continue
		}
		if q.need != nil && !q.need(f.FirstSeq, f.LastSeq) {
			skipped++
			continue
		}
		want = append(want, i)
		ents = append(ents, f)
	}
	return rd, want, ents, skipped
}

// lazyFrames opens a chunk for random access, picks the frames holding q's
// candidate seqs (chunk.Reader.SearchSeq) with their entries, and says how
// many it skips. rd is nil when the chunk cannot be read that way or an
// entry it looked at is damaged: the caller then reads the chunk the
// ordinary way, which reports and works around the damage.
func lazyFrames(q *sliceReq, in chunk.Info, dec *zstd.Decoder) (rd *chunk.Reader, want []int, ents []chunk.Frame, skipped int) {
	rd, err := chunk.OpenLazy(q.store, in, dec)
	if err != nil {
		return nil, nil, nil, 0
	}
	for _, r := range q.must(in.FirstSeq, in.LastSeq, nil) {
		i, err := rd.SearchSeq(r.Lo)
		for ; err == nil && i < rd.NumFrames(); i++ {
			var f chunk.Frame
			if f, err = rd.Frame(i); err != nil || f.FirstSeq > r.Hi {
				break
			}
			if (len(want) == 0 || want[len(want)-1] < i) && f.Overlaps(q.from, q.to) {
				want = append(want, i)
				ents = append(ents, f)
			}
			if f.LastSeq >= r.Hi {
				break // the range ends in this frame: no need to look at the next
			}
		}
		if err != nil {
			rd.Close()
			return nil, nil, nil, 0
		}
	}
	return rd, want, ents, rd.NumFrames() - len(want)
}
