package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

// storer is the store stage: it appends frames to chunks in order and
// commits the ring cursor.
type storer struct {
	cfg    *Config
	log    *slog.Logger
	c      *shmring.Consumer
	ringID uint64
	free   chan *frame
	st     *stats
	cw     *chunk.Writer
	ret    *store.Retention
	ep     episode       // a write failing, for the log
	bs     [][]byte      // a batch's bytes, for AppendBatch
	metas  []chunk.Frame // and entries
	ms     [][]byte      // and metadata frames (none mode: the sidecar's)
}

// resume repairs what a killed writer left and returns the last seq the store
// holds from this ring, so that consume skips what is already stored.
func resume(cfg *Config, log *slog.Logger, r *shmring.Ring) (uint64, error) {
	res, err := chunk.Recover(cfg.Store, chunk.NewDecoder())
	if err != nil {
		return 0, err
	}
	for _, x := range res {
		log.Warn("repaired chunk left open by a previous run", "open", x.Open, "final", x.Final, "frames_kept", x.Kept, "cut", x.Dropped)
	}
	list, err := chunk.List(cfg.Store)
	if err != nil {
		return 0, err
	}
	if len(list) == 0 {
		return 0, nil
	}
	last := list[len(list)-1]
	rd, err := chunk.OpenReader(cfg.Store, last, chunk.NewDecoder())
	if err != nil {
		return 0, fmt.Errorf("read last chunk %q: %w", last.Name, err)
	}
	defer rd.Close()
	if rd.Table.RingID != r.ID() {
		if last.LastSeq >= r.FirstSeq() {
			return 0, fmt.Errorf("store %q holds seqs up to %d from another ring (id %x), and ring %q (id %x) starts at seq %d: "+
				"recreate the ring with fmring create --first-seq %d, or use a new store directory",
				cfg.Store, last.LastSeq, rd.Table.RingID, r.Path(), r.ID(), r.FirstSeq(), last.LastSeq+1)
		}
		return 0, nil
	}
	return last.LastSeq, nil
}

func (s *storer) run(ctx context.Context, ordered <-chan *frame) error {
	var ferr error
	var batch []*frame
	var held *frame   // taken from ordered, not yet stored
	heldDone := false // and its done already received
	for {
		f, done := held, heldDone
		held, heldDone = nil, false
		if f == nil {
			var ok bool
			if f, ok = <-ordered; !ok {
				break
			}
		}
		if !done {
			<-f.done
		}
		// Frames already compressed behind this one go with it, in one
		// write (chunk.Writer.AppendBatch), up to a batch; one still being
		// compressed waits for the next write, so that writing never waits
		// for compression.
		batch = append(batch[:0], f)
		size := len(f.stored(s.cfg.Compress))
		for last := f; !last.last && last.meta.Count > 0 && len(batch) < storeBatch && size < storeBatchBytes; {
			var g *frame
			select {
			case g = <-ordered:
			default:
			}
			if g == nil {
				break // none waiting, or ordered closed (seen above next time)
			}
			select {
			case <-g.done:
				if g.meta.Count == 0 {
					held, heldDone = g, true // a cursor-only frame: on its own
				}
			default:
				held = g
			}
			if held != nil {
				break
			}
			batch = append(batch, g)
			size += len(g.stored(s.cfg.Compress))
			last = g
		}
		if ferr == nil {
			ferr = s.put(ctx, batch)
		}
		for _, g := range batch {
			s.free <- g
		}
	}
	if s.cw != nil && ferr == nil {
		ferr = s.finalize()
	}
	return ferr
}

// Batches of frames stored with one write: up to storeBatch frames and about
// storeBatchBytes.
const (
	storeBatch      = 64
	storeBatchBytes = 1 << 20
)

// stored is what goes into the chunk file for f.
func (f *frame) stored(compress bool) []byte {
	if compress {
		return f.out
	}
	return f.raw
}

// put stores a batch of frames: all with packets, or one with none (it
// carries a commit position and/or ends the chunk). A write that fails
// (disk full, I/O error) is retried until it succeeds or the writer is told
// to stop: meanwhile the pipeline and then the ring fill up, and the
// producer counts drops — nothing stored is damaged and nothing unstored
// is released from the ring.
func (s *storer) put(ctx context.Context, batch []*frame) error {
	if batch[0].meta.Count > 0 {
		for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
			err := s.append(batch)
			if err == nil {
				if ended, lasted, fails := s.ep.ok(time.Now()); ended {
					s.log.Warn("store writes resumed", "failed_for", lasted.Round(time.Millisecond), "retries", fails)
				}
				break
			}
			s.st.retries.Add(1)
			if errors.Is(err, unix.ENOSPC) && s.ret != nil && s.ret.Enabled() {
				if n, rerr := s.ret.Enforce(time.Now(), true); n > 0 {
					continue // room made: write again at once
				} else if rerr != nil {
					s.log.Error("retention could not make room", "err", rerr)
				}
			}
			if log, first := s.ep.fail(time.Now()); first {
				s.log.Error("store write failed; retrying, capture drops will be counted by the ring", "err", err)
			} else if log {
				s.log.Error("store write still failing; retrying", "err", err, "for", s.ep.failing(time.Now()).Round(time.Second), "retries", s.ep.fails)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("stopping with a frame unstored (it stays in the ring): %w", err)
			}
			time.Sleep(delay)
		}
	}
	for i := len(batch) - 1; i >= 0; i-- { // the furthest position: the last frame's
		if f := batch[i]; f.end != 0 {
			s.c.CommitAt(f.end, f.nextSeq)
			break
		}
	}
	if batch[len(batch)-1].last && s.cw != nil {
		return s.finalize()
	}
	return nil
}

func (s *storer) append(batch []*frame) error {
	if s.cw == nil {
		cw, err := chunk.Create(s.cfg.Store, batch[0].meta.FirstSeq, s.cfg.Compress, s.ringID)
		if err != nil {
			return err
		}
		s.cw = cw
	}
	s.bs, s.metas, s.ms = s.bs[:0], s.metas[:0], s.ms[:0]
	for _, f := range batch {
		s.bs = append(s.bs, f.stored(s.cfg.Compress))
		s.metas = append(s.metas, f.meta)
		if !s.cfg.Compress {
			s.ms = append(s.ms, f.out)
		}
	}
	ms := s.ms
	if s.cfg.Compress {
		ms = nil // in the frames' bytes
	}
	if err := s.cw.AppendBatchMeta(s.bs, ms, s.metas); err != nil {
		if s.cw.NumFrames() == 0 {
			s.cw.Abandon()
			s.cw = nil
		}
		return err
	}
	for i, f := range batch {
		s.st.packets.Add(uint64(f.meta.Count))
		s.st.inBytes.Add(uint64(len(f.raw)))
		s.st.outBytes.Add(uint64(len(s.bs[i])))
	}
	s.st.frames.Add(uint64(len(batch)))
	return nil
}

func (s *storer) finalize() error {
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		name, err := s.cw.Finalize()
		if err == nil {
			s.cw = nil
			if name != "" {
				s.st.chunks.Add(1)
				s.log.Info("chunk stored", "chunk", name)
			}
			if s.ret != nil && s.ret.Enabled() { // a new chunk may put the store over its quota
				if _, err := s.ret.Enforce(time.Now(), false); err != nil {
					s.log.Error("retention", "err", err)
				}
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) && delay < time.Second {
			s.log.Error("finalize chunk failed; retrying", "err", err)
			time.Sleep(delay)
			continue
		}
		return err
	}
}
