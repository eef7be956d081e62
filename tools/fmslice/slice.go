package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/zstd"

	"fmcap/writer/chunk"
)

// query is one extraction: a half-open time range and an optional filter.
type query struct {
	store  string
	from   int64
	to     int64
	filter *bpf // nil: every packet
	// need says whether a frame holding seqs first..last may hold a match
	// (the index's answer, see plan.go); nil: every frame in the range.
	need func(first, last uint64) bool
	// must gives the seqs of first..last that may hold a match (appended to
	// out); nil: every one.
	must func(first, last uint64, out []seqRange) []seqRange
}

// result says what a query read, and what it could not.
type result struct {
	chunks, frames, packets int
	skipped                 int // frames in the range the index said to skip
	decompressed            int64
	damaged                 []error // frames or chunks skipped: the output is incomplete
}

type sink interface {
	write(ts int64, wireLen uint32, data []byte) error
}

// slice extracts q to out. It opens only chunks whose names say they overlap
// the range (and the chunk being written), and only frames whose frame-table
// times overlap it; packets come out in capture (seq) order. A damaged frame
// or chunk is reported in the result and skipped; only trouble with the
// output or the store as a whole is an error.
func slice(q *query, out sink, dec *zstd.Decoder) (*result, error) {
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
	res := &result{}
	pk := newPicker(q)
	// emit writes the packets pk picked from rd's frames, in order.
	emit := func(rd *chunk.Reader, in chunk.Info) func(fi int, buf []byte, hits []hit, perr, err error) error {
		return func(fi int, buf []byte, hits []hit, perr, err error) error {
			if err != nil {
				res.damaged = append(res.damaged, err)
				return nil
			}
			res.frames++
			res.decompressed += int64(len(buf))
			for _, h := range hits {
				if err := out.write(h.ts, h.wire, buf[h.off:h.off+h.n]); err != nil {
					return err
				}
			}
			res.packets += len(hits)
			if perr != nil {
				res.damaged = append(res.damaged, &chunk.FrameError{Chunk: in.Name, Index: fi, Err: perr})
			}
			return nil
		}
	}
	for i := 0; i < len(list); i++ {
		in := list[i]
		if !in.Overlaps(q.from, q.to) {
			continue
		}
		if q.must != nil && in.MinTS >= q.from && in.MaxTS < q.to {
			// A chunk wholly inside the range, and an index: read only the
			// entries of the frames that hold candidates (see chunk.OpenLazy).
			if rd, want, ok := lazyFrames(q, in, dec, res); ok {
				res.chunks++
				werr := readFrames(rd, want, pk, emit(rd, in))
				rd.Close()
				if werr != nil {
					return res, werr
				}
				continue
			}
		}
		rd, err := chunk.OpenReader(q.store, in, dec)
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
			res.damaged = append(res.damaged, fmt.Errorf("chunk %q skipped: %w", in.Name, err))
			continue
		}
		if rd.Note != "" {
			res.damaged = append(res.damaged, fmt.Errorf("chunk %q: %s", in.Name, rd.Note))
		}
		res.chunks++
		var want []int
		for fi := range rd.Table.Frames {
			f := &rd.Table.Frames[fi]
			if !f.Overlaps(q.from, q.to) {
				continue
			}
			if q.need != nil && !q.need(f.FirstSeq, f.LastSeq) {
				res.skipped++
				continue
			}
			want = append(want, fi)
		}
		if werr := readFrames(rd, want, pk, emit(rd, in)); werr != nil {
			rd.Close()
			return res, werr
		}
		rd.Close()
	}
	return res, nil
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

// hit is a packet picked from a frame: its time, wire length and where its
// bytes are in the frame.
type hit struct {
	ts     int64
	wire   uint32
	off, n uint32
}

// picker chooses the packets of a frame that go out: in the range, among
// the index's candidates, matching the filter. Each worker has its own
// filter and buffers (pick's w).
type picker struct {
	q       *query
	batches []batch      // one per worker
	must    [][]seqRange // one per worker
	free    chan bufs    // frame buffers, kept from chunk to chunk
}

// bufs are one frame's buffers: its bytes and the packets picked from it.
type bufs struct {
	buf  []byte
	hits []hit
}

func newPicker(q *query) *picker {
	n := runtime.GOMAXPROCS(0)
	pk := &picker{q: q, batches: make([]batch, n), must: make([][]seqRange, n), free: make(chan bufs, 2*n)}
	for i := 0; i < cap(pk.free); i++ {
		pk.free <- bufs{}
	}
	return pk
}

// pick appends to hits the packets of frame f (decompressed in buf; first:
// frame 0 of its chunk) that go out; a damaged frame gives those before
// the damage and the error.
func (pk *picker) pick(w int, f *chunk.Frame, buf []byte, first bool, hits []hit) ([]hit, error) {
	q := pk.q
	var must []seqRange
	if q.must != nil {
		pk.must[w] = q.must(f.FirstSeq, f.LastSeq, pk.must[w])
		must = pk.must[w]
	}
	seq, next := f.FirstSeq, 0
	base := uintptr(unsafe.Pointer(&buf[0]))
	start := len(hits)
	perr := chunk.Packets(buf, first, func(p chunk.Packet) bool {
		s := seq
		seq++
		if q.must != nil {
			for next < len(must) && must[next].hi < s {
				next++
			}
			if next == len(must) {
				return false // no candidate left in this frame
			}
			if must[next].lo > s {
				return true // no filter term the index knows can match it
			}
		}
		if p.TS < q.from || p.TS >= q.to {
			return true
		}
		off := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(p.Data))) - base)
		hits = append(hits, hit{p.TS, p.WireLen, off, uint32(len(p.Data))})
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

// readFrames decompresses the frames want of rd on every core, where pk
// also picks their packets, and hands them to fn in order (packets leave
// in capture order). Buffers are taken in order by the one goroutine that
// hands out the work, so a frame never waits for a buffer held by a later
// one. fn's error stops the reading.
func readFrames(rd *chunk.Reader, want []int, pk *picker, fn func(fi int, buf []byte, hits []hit, perr, err error) error) error {
	if len(want) == 0 {
		return nil
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > len(want) {
		workers = len(want)
	}
	type result struct {
		buf       []byte
		hits      []hit
		perr, err error
	}
	type job struct {
		fi   int
		b    bufs
		done chan result
	}
	free := pk.free
	jobs := make(chan job)
	pending := make(chan job, 2*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cbuf []byte
			for j := range jobs {
				out, c, err := rd.ReadFrameInto(j.fi, j.b.buf, cbuf)
				cbuf = c
				r := result{buf: out, hits: j.b.hits[:0], err: err}
				if out == nil {
					r.buf = j.b.buf
				} else if f, ferr := rd.Frame(j.fi); ferr == nil && len(out) > 0 {
					r.hits, r.perr = pk.pick(w, &f, out, j.fi == 0, r.hits)
				}
				j.done <- r
			}
		}()
	}
	go func() {
		defer close(jobs)
		defer close(pending)
		for _, fi := range want {
			var b bufs
			select {
			case b = <-free:
			case <-stop:
				return
			}
			j := job{fi: fi, b: b, done: make(chan result, 1)}
			select {
			case pending <- j:
			case <-stop:
				return
			}
			jobs <- j
		}
	}()
	var ferr error
	for j := range pending {
		r := <-j.done
		if ferr == nil {
			ferr = fn(j.fi, r.buf, r.hits, r.perr, r.err)
			if ferr != nil {
				close(stop)
			}
		}
		select {
		case free <- bufs{r.buf[:0], r.hits[:0]}:
		default:
		}
	}
	wg.Wait()
	return ferr
}

// lazyFrames opens a chunk for random access and picks the frames holding
// q's candidate seqs by binary search. ok is false when the chunk cannot be
// read that way or an entry it looked at is damaged: the caller then reads
// the chunk the ordinary way, which reports and works around the damage.
func lazyFrames(q *query, in chunk.Info, dec *zstd.Decoder, res *result) (*chunk.Reader, []int, bool) {
	rd, err := chunk.OpenLazy(q.store, in, dec)
	if err != nil {
		return nil, nil, false
	}
	var want []int
	for _, r := range q.must(in.FirstSeq, in.LastSeq, nil) {
		i, err := rd.SearchSeq(r.lo)
		for ; err == nil && i < rd.NumFrames(); i++ {
			var f chunk.Frame
			if f, err = rd.Frame(i); err != nil || f.FirstSeq > r.hi {
				break
			}
			if (len(want) == 0 || want[len(want)-1] < i) && f.Overlaps(q.from, q.to) {
				want = append(want, i)
			}
		}
		if err != nil {
			rd.Close()
			return nil, nil, false
		}
	}
	res.skipped += rd.NumFrames() - len(want)
	return rd, want, true
}
