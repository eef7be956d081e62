package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/google/gopacket"
	"github.com/klauspost/compress/zstd"

	"fmcap/writer/chunk"
)

// query is one extraction: a half-open time range and an optional filter.
type query struct {
	store string
	from  int64
	to    int64
	match func(ci gopacket.CaptureInfo, data []byte) bool // nil: every packet
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
	var must []seqRange
	for i := 0; i < len(list); i++ {
		in := list[i]
		if !in.Overlaps(q.from, q.to) {
			continue
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
		if werr := readFrames(rd, want, func(fi int, buf []byte, err error) error {
			if err != nil {
				res.damaged = append(res.damaged, err)
				return nil
			}
			res.frames++
			res.decompressed += int64(len(buf))
			var werr error
			f := &rd.Table.Frames[fi]
			seq, next := f.FirstSeq, 0
			if q.must != nil {
				must = q.must(f.FirstSeq, f.LastSeq, must)
			}
			perr := chunk.Packets(buf, fi == 0, func(p chunk.Packet) bool {
				s := seq
				seq++
				if q.must != nil {
					for next < len(must) && must[next].hi < s {
						next++
					}
					if next == len(must) || must[next].lo > s {
						return true // no filter term the index knows can match it
					}
				}
				if p.TS < q.from || p.TS >= q.to {
					return true
				}
				if q.match != nil && !q.match(gopacket.CaptureInfo{CaptureLength: len(p.Data), Length: int(p.WireLen)}, p.Data) {
					return true
				}
				res.packets++
				werr = out.write(p.TS, p.WireLen, p.Data)
				return werr == nil
			})
			if perr != nil && werr == nil {
				res.damaged = append(res.damaged, &chunk.FrameError{Chunk: in.Name, Index: fi, Err: perr})
			}
			return werr
		}); werr != nil {
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

// readFrames decompresses the frames want of rd on every core, and hands
// them to fn in order (packets leave in capture order). Buffers are taken
// in order by the one goroutine that hands out the work, so a frame never
// waits for a buffer held by a later one. fn's error stops the reading.
func readFrames(rd *chunk.Reader, want []int, fn func(fi int, buf []byte, err error) error) error {
	if len(want) == 0 {
		return nil
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > len(want) {
		workers = len(want)
	}
	type result struct {
		buf []byte
		err error
	}
	type job struct {
		fi   int
		buf  []byte
		done chan result
	}
	free := make(chan []byte, 2*workers)
	for i := 0; i < cap(free); i++ {
		free <- nil
	}
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
				out, c, err := rd.ReadFrameInto(j.fi, j.buf, cbuf)
				cbuf = c
				if out == nil {
					out = j.buf
				}
				j.done <- result{out, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		defer close(pending)
		for _, fi := range want {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			j := job{fi: fi, buf: b, done: make(chan result, 1)}
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
			ferr = fn(j.fi, r.buf, r.err)
			if ferr != nil {
				close(stop)
			}
		}
		select {
		case free <- r.buf[:0]:
		default:
		}
	}
	wg.Wait()
	return ferr
}
