// Package indexer is the engine of the indexer process: it builds the time
// and flow-key index segments (store/segment) that let a query read only
// the frames it needs. Live reads the capture ring as a lossy consumer (it
// can never slow capture or cause a drop; when it falls behind it is
// overrun and records the seqs it missed); Rebuild indexes stored chunks
// instead, to fill such gaps or re-index a range. cmd/indexer is its main.
package indexer

// Live indexing from the ring. The indexer is a lossy consumer: records
// are decoded into a batch, and the batch goes into the segment only once
// Consumer.Verify says the producer did not overwrite them while they were
// read; an overrun voids the batch, and the seqs it missed become a gap
// (recorded in the segment, or, for a long one, left to no segment at
// all: either way queries scan them, and --rebuild fills them from the
// chunks). A segment is written every segPackets seqs or segAge, and only
// then is the ring cursor committed: a restarted indexer resumes at the
// first seq no segment holds.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/internal/metrics"
	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/internal/sdnotify"
	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

const (
	DefaultSegmentAge = 10 * time.Second // the default of LiveConfig.SegAge
	batchSize         = 4096
	prefetch          = 16 // packets whose flow entries are loaded together (segment.Builder.Prefetch)
	// A gap longer than this ends the segment; the next starts after it.
	maxGapInSegment = 64 * segment.DefaultGroupSize
)

// LiveConfig is the live indexer's configuration.
type LiveConfig struct {
	Ring, Consumer string // the ring file and the (lossy) consumer slot
	Dir            string // the index directory segments go in
	Store          string // the writer's store, whose retention.log publish reads
	SegPackets     uint64 // seqs per segment at most
	SegAge         time.Duration
	ExitOnClose    bool
	Metrics        string // Prometheus address ("" for none)
}

type entry struct {
	seq uint64
	ts  int64
	p   segment.Packet
}

type indexer struct {
	cfg     LiveConfig
	log     *slog.Logger
	c       *shmring.Consumer
	b       *segment.Builder
	started time.Time
	batch   []entry
	n       int
	gaps    uint64 // seqs missed, for the log

	// read by the metrics endpoint
	indexed  atomic.Uint64
	segments atomic.Uint64
	dropped  atomic.Uint64 // segments published over seqs retention had removed meanwhile
	missed   atomic.Uint64
}

// Live indexes the ring until ctx is cancelled (or, with ExitOnClose, the
// producer has closed the ring and everything is indexed).
func Live(ctx context.Context, cfg LiveConfig, log *slog.Logger) error {
	r, err := shmring.Open(cfg.Ring)
	if err != nil {
		return err
	}
	defer r.Close()
	c, err := r.Attach(cfg.Consumer)
	if err != nil {
		return err
	}
	defer c.Close()
	if !c.Lossy() {
		return fmt.Errorf("consumer slot %q of %s is lossless: the indexer must never hold capture back; declare it NAME:lossy", cfg.Consumer, cfg.Ring)
	}
	cleanTemp(cfg.Dir)
	ix := &indexer{cfg: cfg, log: log, c: c, batch: make([]entry, batchSize)}
	next := resumeSeq(c, cfg.Dir)
	ix.reset(next)
	if err := metrics.Serve(ctx, cfg.Metrics, log, func(w *metrics.Writer) { ix.writeMetrics(w, r) }); err != nil {
		log.Warn("no metrics", "err", err)
	}
	sdnotify.Ready()
	log.Info("indexer started", "ring", cfg.Ring, "consumer", cfg.Consumer, "index", cfg.Dir, "resume_seq", next)
	return ix.run(ctx)
}

// resumeSeq is where indexing resumes: after the last segment (a crash
// between writing a segment and committing the cursor re-reads records
// already indexed), or at the consumer's cursor.
func resumeSeq(c *shmring.Consumer, dir string) uint64 {
	next := c.NextSeq()
	if segs, err := segment.List(dir); err == nil && len(segs) > 0 && segs[len(segs)-1].Last+1 > next {
		next = segs[len(segs)-1].Last + 1
	}
	return next
}

func (ix *indexer) writeMetrics(w *metrics.Writer, r *shmring.Ring) {
	w.Counter("fmcap_indexer_packets_total", "Packets indexed.", ix.indexed.Load())
	w.Counter("fmcap_indexer_segments_total", "Segments written.", ix.segments.Load())
	w.Counter("fmcap_indexer_segments_dropped_total", "Segments removed right after writing: retention had removed their chunks meanwhile.", ix.dropped.Load())
	w.Counter("fmcap_indexer_missed_total", "Seqs the indexer missed (overrun or down); scanned by queries until --rebuild.", ix.missed.Load())
	metrics.Ring(w, r.Info())
}

// run reads the ring into batches until ctx is cancelled or, with
// ExitOnClose, the ring is closed and drained. When the ring is empty it
// applies the batch, writes a segment that has reached its age, and naps.
func (ix *indexer) run(ctx context.Context) error {
	wd := sdnotify.NewWatchdog()
	idle := 0
	for {
		if ctx.Err() != nil {
			return ix.stop()
		}
		rec, err := ix.c.Next()
		switch {
		case err == nil:
			idle = 0
			if err := ix.take(rec); err != nil {
				return err
			}
			continue
		case errors.Is(err, shmring.ErrOverrun):
			ix.n = 0 // void: the gap shows in the next record's seq
			continue
		case errors.Is(err, shmring.ErrEmpty):
		case err == io.EOF:
			if ix.cfg.ExitOnClose {
				if err := ix.apply(); err != nil {
					return err
				}
				return ix.stop()
			}
		default:
			return err
		}
		if err := ix.apply(); err != nil {
			return err
		}
		now := time.Now()
		wd.Ping(now)
		if ix.b.Count() > 0 && now.Sub(ix.started) >= ix.cfg.SegAge {
			if err := ix.flush(); err != nil {
				return err
			}
		}
		idle++
		if idle < 64 {
			time.Sleep(50 * time.Microsecond)
		} else {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// take decodes one record into the batch, and applies a full batch.
func (ix *indexer) take(rec shmring.Record) error {
	if rec.Seq < ix.b.Next() {
		return nil // indexed before a restart
	}
	e := &ix.batch[ix.n]
	// The writer stores the time clamped to what pcap can hold; the index
	// must say the same time, or a query by time would look for the packet
	// where it is not.
	e.seq, e.ts = rec.Seq, chunk.ClampTS(rec.TS)
	query.DecodePacket(rec.Data, &e.p)
	e.p.Wire = rec.WireLen
	e.p.Origin = recordOrigin(&rec)
	ix.n++
	if ix.n == len(ix.batch) {
		return ix.apply()
	}
	return nil
}

// recordOrigin is the record's origin as the index keys it. A blob the
// writer's origin.Parse refuses it stores as no tunnel (chunk.MetaBuilder),
// and so does the index: both say the same of every packet.
func recordOrigin(rec *shmring.Record) segment.Origin {
	o, err := origin.Parse(rec.OriginKind, rec.Origin)
	if err != nil {
		o = origin.Origin{}
	}
	return segment.OriginOf(rec.Port, uint8(rec.Dir), rec.Rule, &o)
}

func (ix *indexer) reset(first uint64) {
	ix.b = segment.NewBuilder(first, segment.DefaultGroupSize)
	ix.started = time.Now()
}

// apply moves a verified batch into the segment.
func (ix *indexer) apply() error {
	if ix.n == 0 {
		return nil
	}
	if err := ix.c.Verify(); err != nil {
		ix.n = 0
		if errors.Is(err, shmring.ErrOverrun) {
			return nil
		}
		return err
	}
	var ahead [prefetch]*segment.Packet
	for i := 0; i < ix.n; i++ {
		if i%prefetch == 0 {
			k := 0
			for ; k < prefetch && i+k < ix.n; k++ {
				ahead[k] = &ix.batch[i+k].p
			}
			ix.b.Prefetch(ahead[:k])
		}
		e := &ix.batch[i]
		if e.seq > ix.b.Next() {
			if err := ix.gap(ix.b.Next(), e.seq-1); err != nil {
				return err
			}
		}
		ix.b.Add(e.seq, e.ts, &e.p)
		ix.indexed.Add(1)
		if ix.b.Count() >= ix.cfg.SegPackets {
			if err := ix.flush(); err != nil {
				return err
			}
		}
	}
	ix.n = 0
	return nil
}

// gap records seqs the indexer never saw.
func (ix *indexer) gap(lo, hi uint64) error {
	ix.gaps += hi - lo + 1
	ix.missed.Add(hi - lo + 1)
	ix.log.Warn("indexer missed records (overrun or down); queries scan them until indexer --rebuild", "first_seq", lo, "last_seq", hi)
	appendGapLog(ix.cfg.Dir, lo, hi)
	if hi-lo+1 <= maxGapInSegment && ix.b.Count()+(hi-lo+1) < ix.cfg.SegPackets {
		ix.b.Gap(lo, hi)
		return nil
	}
	if ix.b.Count() > 0 {
		if err := ix.flush(); err != nil {
			return err
		}
	}
	ix.reset(hi + 1) // no segment for the gap: it is unindexed
	return nil
}

// flush writes the segment and commits the ring cursor past it.
func (ix *indexer) flush() error {
	if ix.b.Count() == 0 {
		return nil
	}
	kept, err := publish(ix.b, ix.cfg.Dir, ix.cfg.Store)
	if err != nil {
		return err
	}
	ix.c.Commit()
	if kept {
		ix.segments.Add(1)
	} else {
		ix.dropped.Add(1)
		ix.log.Info("segment dropped: retention removed its chunks meanwhile", "first_seq", ix.b.First(), "last_seq", ix.b.Next()-1)
	}
	ix.reset(ix.b.Next())
	return nil
}

func (ix *indexer) stop() error {
	err := ix.flush()
	ix.log.Info("indexer stopped", "next_seq", ix.b.Next(), "missed", ix.gaps, "err", err)
	return err
}

// appendGapLog notes a missed range in the index directory's gaps.log
// ("missed FIRST LAST UNIX_NS"), for operators; queries need only the
// segments.
func appendGapLog(dir string, lo, hi uint64) {
	f, err := fsmode.OpenFile(filepath.Join(dir, store.GapsLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "missed %d %d %d\n", lo, hi, time.Now().UnixNano())
	f.Close()
}

func cleanTemp(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".seg-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
