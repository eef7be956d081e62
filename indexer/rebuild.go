package indexer

// indexer --rebuild: index stored chunks instead of the ring, to fill the
// gaps a live indexer left or to re-index a range. Every chunk overlapping
// the time range is indexed into segments of its own seqs; existing
// segments overlapping them are replaced (and chunks they overlap are
// indexed too, so nothing that was indexed becomes unindexed). What it
// leaves out it says, with the reason: the chunk being written (the live
// indexer indexes it, or a rebuild once the writer has published it),
// chunks and frames it cannot read (queries read around them).

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/fmcap/fmcap/internal/progress"
	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// Rebuild indexes the chunks of store that overlap [from, to] (Unix ns)
// into segments in dir, replacing the segments they overlap; quiet draws
// no progress line.
func Rebuild(store, dir string, from, to int64, segPackets int, quiet bool, log *slog.Logger) error {
	cleanTemp(dir)
	chunks, err := chunk.List(store)
	if err != nil {
		return err
	}
	segs, err := segment.List(dir)
	if err != nil {
		return err
	}
	pick, drop := choose(chunks, segs, from, to, log)
	for si := range drop {
		if err := os.Remove(filepath.Join(dir, segs[si].Name)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	var bufs frameBufs
	var packets, written, skipped int
	var total uint64
	for ci := range pick {
		total += chunks[ci].LastSeq - chunks[ci].FirstSeq + 1
	}
	meter := progress.New(os.Stderr, quiet, "indexer --rebuild", "packets", total)
	defer meter.Done()
	log = slog.New(meter.Handler(log.Handler()))
	// A segment runs on across chunks while the seqs do (fewer, larger
	// segments: a smaller index), and ends at segPackets or a gap.
	var b *segment.Builder
	flush := func() error {
		if b != nil && b.Count() > 0 {
			kept, err := publish(b, dir, store)
			if err != nil {
				return err
			}
			if kept {
				written++
			} else {
				log.Info("segment dropped: retention removed its chunks meanwhile", "first_seq", b.First())
			}
		}
		b = nil
		return nil
	}
	for ci, c := range chunks {
		if !pick[ci] {
			continue
		}
		rd, err := chunk.OpenReader(store, c, dec)
		if err != nil {
			if os.IsNotExist(err) {
				log.Warn("chunk skipped: removed (by retention) while rebuilding", "chunk", c.Name)
			} else {
				log.Warn("chunk skipped: unreadable, its seqs stay unindexed (queries read around it)", "chunk", c.Name, "err", err)
			}
			skipped++
			continue
		}
		if err := indexChunk(rd, &b, flush, segPackets, &bufs, &packets, log, func() { meter.Update(uint64(packets), -1) }); err != nil {
			rd.Close()
			return err
		}
		rd.Close()
	}
	if err := flush(); err != nil {
		return err
	}
	meter.Done()
	log.Info("rebuilt", "chunks", len(pick)-skipped, "chunks_skipped", skipped, "packets", packets, "segments", written, "replaced", len(drop))
	return nil
}

// choose picks the finished chunks overlapping [from, to] and the segments
// to replace (drop: those overlapping a picked chunk), closing over both:
// a replaced segment's other chunks are picked too, so that nothing that
// was indexed becomes unindexed.
func choose(chunks []chunk.Info, segs []segment.Entry, from, to int64, log *slog.Logger) (pick, drop map[int]bool) {
	pick = map[int]bool{}
	for i, c := range chunks {
		if c.Open && c.Overlaps(from, to) {
			log.Warn("chunk skipped: still being written (the live indexer indexes it; or run --rebuild again once the writer has published it)", "chunk", c.Name, "first_seq", c.FirstSeq)
		}
		if !c.Open && c.Overlaps(from, to) {
			pick[i] = true
		}
	}
	// Close over segments: a replaced segment's chunks are rebuilt too.
	drop = map[int]bool{}
	for changed := true; changed; {
		changed = false
		for si, s := range segs {
			if drop[si] {
				continue
			}
			for ci := range pick {
				if s.First <= chunks[ci].LastSeq && chunks[ci].FirstSeq <= s.Last {
					drop[si], changed = true, true
					for cj, c := range chunks {
						if !c.Open && !pick[cj] && s.First <= c.LastSeq && c.FirstSeq <= s.Last {
							pick[cj] = true
						}
					}
					break
				}
			}
		}
	}
	return pick, drop
}

// frameBufs are indexChunk's buffers, reused from frame to frame: the
// frame's bytes, its compressed bytes, its decoded metadata.
type frameBufs struct {
	buf, cbuf []byte
	meta      chunk.Meta
}

// indexChunk adds the packets of rd's frames to *b (a new builder when the
// seqs do not follow on), flushing at segPackets, at a damaged frame and at
// a frame whose seqs are unknown (its table rebuilt from the seek table or
// by scanning: its packets stay unindexed, and queries scan them).
func indexChunk(rd *chunk.Reader, b **segment.Builder, flush func() error, segPackets int, fb *frameBufs, packets *int, log *slog.Logger, tick func()) error {
	name := rd.Info.Name
	for fi, f := range rd.Table.Frames {
		if f.Count == 0 {
			log.Warn("frame with unknown seqs: left unindexed", "chunk", name, "frame", fi)
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		var err error
		var meta []byte
		fb.buf, meta, fb.cbuf, err = rd.AppendFrameMeta(fi, f, fb.buf[:0], fb.cbuf)
		if err != nil {
			log.Warn("frame skipped: its seqs stay unindexed", "chunk", name, "frame", fi, "err", err)
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		seq := f.FirstSeq
		var p segment.Packet
		var ferr error
		// The packets' origins, as fmslice reads them: from a metadata
		// frame that parses and counts the frame's packets, else unknown.
		var mi chunk.MetaIter
		known := meta != nil && fb.meta.Parse(meta) == nil && fb.meta.Count() == f.Count
		if known {
			mi = fb.meta.Iter()
		}
		perr := chunk.Packets(fb.buf, fi == 0, func(pk chunk.Packet) bool {
			if *b == nil || (*b).Next() != seq {
				if ferr = flush(); ferr != nil {
					return false
				}
				*b = segment.NewBuilder(seq, segment.DefaultGroupSize)
			}
			query.DecodePacket(pk.Data, &p)
			p.Wire = pk.WireLen
			var pm chunk.PacketMeta
			if known && mi.Next(&pm) {
				p.Origin = segment.OriginOf(pm.Port, pm.Dir, pm.Rule, &pm.Origin)
			}
			(*b).Add(seq, chunk.ClampTS(pk.TS), &p) // stored clamped already: the same clamp as live, whatever a chunk holds
			seq++
			*packets++
			if (*b).Count() >= uint64(segPackets) {
				if ferr = flush(); ferr != nil {
					return false
				}
			}
			return true
		})
		if ferr != nil {
			return ferr
		}
		tick()
		if perr != nil {
			log.Warn("frame damaged: its seqs stay unindexed", "chunk", name, "frame", fi, "err", perr)
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return nil
}
