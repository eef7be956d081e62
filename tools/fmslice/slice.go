package main

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	var buf []byte
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
		for fi := range rd.Table.Frames {
			f := &rd.Table.Frames[fi]
			if !f.Overlaps(q.from, q.to) {
				continue
			}
			if q.need != nil && !q.need(f.FirstSeq, f.LastSeq) {
				res.skipped++
				continue
			}
			buf, err = rd.ReadFrame(fi, buf)
			if err != nil {
				res.damaged = append(res.damaged, err)
				continue
			}
			res.frames++
			res.decompressed += int64(len(buf))
			var werr error
			perr := chunk.Packets(buf, fi == 0, func(p chunk.Packet) bool {
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
			if werr != nil {
				rd.Close()
				return res, werr
			}
			if perr != nil {
				res.damaged = append(res.damaged, &chunk.FrameError{Chunk: in.Name, Index: fi, Err: perr})
			}
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
