// Package writer is the engine of the writer process: the ring's lossless
// consumer, storing every packet in compressed pcap chunks (store/chunk)
// and keeping the store under its retention limits. cmd/writer is its main.
package writer

// The writer is three stages joined by channels:
//
//	consume.go   one goroutine reads the ring and cuts the packet stream into
//	             frames of pcap bytes (never splitting a packet), deciding
//	             where chunks end (size of pcap bytes, age), and gathers
//	             each packet's port, direction, rule and origin (the ring
//	             record's) for the frame's metadata;
//	compress.go  one worker per core compresses frames and checksums them,
//	             in any order, each behind its metadata frame (zstd mode;
//	             an uncompressed chunk is plain pcap and keeps the metadata
//	             frames in its sidecar);
//	store.go     one goroutine takes frames in the order consume made them,
//	             waits for each to be compressed, appends it to the open
//	             chunk, and only then commits the ring cursor past it.
//
// The ordering rule: consume sends every frame to the compress workers and to
// store's FIFO in the same order, so store writes frames in packet order
// whatever order the workers finish in. The ring cursor only moves past
// packets that are in a chunk file, which is what makes a kill -9 lose
// nothing: after a restart the ring still holds every packet not stored, and
// the packets stored but not yet committed are recognised by seq and skipped.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/internal/metrics"
	"github.com/fmcap/fmcap/internal/sdnotify"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

// Config is the writer's configuration.
type Config struct {
	Ring          string
	Consumer      string
	Store         string
	Compress      bool // zstd, or plain pcap
	Level         int  // zstd level: 1 fastest .. 4 best
	FrameSize     int
	FlushInterval time.Duration
	ChunkSize     int64 // pcap bytes per chunk before rotation
	ChunkAge      time.Duration
	Workers       int
	ExitOnClose   bool
	RetainBytes   uint64        // store quota; 0: none
	RetainFree    uint64        // minimum free disk; 0: none
	RetainAge     time.Duration // 0: keep forever
	Metrics       string        // Prometheus address ("" for none)
}

// frame is one frame travelling through the pipeline. Frames are pooled: a
// fixed number circulate, which also bounds the memory the writer uses and
// makes a slow disk back up into the ring rather than into the heap.
type frame struct {
	raw  []byte // pcap bytes; a chunk's first frame starts with the pcap header
	out  []byte // compressed bytes (zstd mode), metadata frame (none mode)
	meta chunk.Frame
	// pm gathers the frame's per-packet metadata (port, direction, rule,
	// origin), written ahead of the zstd frame, or to an uncompressed
	// chunk's metadata sidecar (store/chunk FORMAT).
	pm chunk.MetaBuilder

	// Ring position after this frame's last packet, and the seq there: what
	// store commits once the frame is written. end == 0: nothing to commit.
	end     uint64
	nextSeq uint64
	// last ends the chunk after this frame. A frame with no packet may carry
	// only last and/or a commit position.
	last bool
	// plain: consume judged the frame not worth compressing (consume.go,
	// sizeFrame); compress stores it in raw zstd blocks (chunk.AppendStored).
	plain bool

	done chan struct{} // compress → store: out is ready
}

func (f *frame) reset() {
	f.raw = f.raw[:0]
	f.meta = chunk.Frame{}
	f.pm.Reset()
	f.end, f.nextSeq, f.last, f.plain = 0, 0, false, false
}

// stats are the writer's counters: written by the stages (consume, store),
// read by the metrics endpoint (metrics.go) and by Run's line at exit.
type stats struct {
	packets  atomic.Uint64 // packets stored
	skipped  atomic.Uint64 // packets found already stored after a restart
	inBytes  atomic.Uint64 // pcap bytes stored
	outBytes atomic.Uint64 // bytes written to chunk files
	frames   atomic.Uint64
	chunks   atomic.Uint64
	retries  atomic.Uint64 // failed writes (disk full …) retried
	plain    atomic.Uint64 // frames stored in raw zstd blocks (frame.plain)
	// ratio is the compression ratio of the frame compressed last, in
	// 1/256ths (0: none yet): stored by the compress workers (the store in
	// compressor.compress) and loaded by consume once a frame (in
	// consumer.sizeFrame), which sizes the next frame and picks how to
	// store it. Frames finish in any order, so it is an estimate, a few
	// frames late.
	ratio atomic.Uint32
}

// Defaults of the flags that set Config.FlushInterval and Config.ChunkAge.
const (
	DefaultFlush    = 500 * time.Millisecond
	DefaultChunkAge = time.Minute
)

// Run wires the stages and returns when they are done: on ctx cancellation
// (SIGTERM) after draining, or at the end of the ring with ExitOnClose.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	// Chunks, frame tables and logs are 0640 in 0750 directories whatever
	// umask the writer was started with (internal/fsmode).
	fsmode.SetUmask()
	// The ring first: a missing ring or slot is an error that leaves nothing
	// behind, not an empty store directory.
	r, err := shmring.Open(cfg.Ring)
	if err != nil {
		return cliutil.RingMissing(cfg.Ring, err)
	}
	defer r.Close()
	c, err := r.Attach(cfg.Consumer)
	if err != nil {
		return err
	}
	defer c.Close()
	if c.Lossy() {
		return fmt.Errorf("ring %q: consumer %q is lossy; the writer needs a lossless slot (fmring create --consumer %s:lossless)", cfg.Ring, cfg.Consumer, cfg.Consumer)
	}
	if err := fsmode.MkdirAll(cfg.Store); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	skipTo, err := resume(cfg, log, r)
	if err != nil {
		return err
	}
	// Frames in flight: enough that a worker never waits while store is in a
	// write or an fsync (with 2*workers+4 the writer stored 0.91 GB/s to disk on
	// 2 cores; with this, 1.1–1.2 GB/s, bench/writer.sh). Bounded, so a slow
	// disk backs up into the ring, not into the heap (about 5 MiB per worker).
	nframes := 8*cfg.Workers + 8
	st := &stats{}
	free := make(chan *frame, nframes)
	for i := 0; i < nframes; i++ {
		free <- &frame{raw: make([]byte, 0, maxFrame(cfg.FrameSize)+chunk.MaxRecord+len(chunkHeader)), done: make(chan struct{}, 1)}
	}
	work := make(chan *frame, nframes)
	ordered := make(chan *frame, nframes)
	k := &consumer{cfg: cfg, c: c, skipTo: skipTo, free: free, work: work, ordered: ordered, st: st}
	ret := &store.Retention{Dir: cfg.Store, MaxBytes: cfg.RetainBytes, MinFree: cfg.RetainFree, MaxAge: cfg.RetainAge, Log: log}
	s := &storer{cfg: cfg, log: log, c: c, ringID: r.ID(), free: free, st: st, ret: ret, ep: episode{every: 30 * time.Second}}
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if err := metrics.Serve(mctx, cfg.Metrics, log, func(w *metrics.Writer) { writeMetrics(w, cfg, st, ret, r) }); err != nil {
		log.Warn("no metrics", "err", err) // storing matters more than its figures
	}
	if ret.Enabled() {
		if _, err := ret.Enforce(time.Now(), false); err != nil { // at once: a store over its quota at start
			log.Error("retention", "err", err)
		}
		stopRet := make(chan struct{})
		defer close(stopRet)
		go ret.Run(stopRet)
	}
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		comp, err := newCompressor(cfg)
		if err != nil {
			return err
		}
		comp.st = st
		wg.Add(1)
		go func() { defer wg.Done(); comp.run(work) }()
	}
	sdnotify.Ready()
	log.Info("writer started", "ring", cfg.Ring, "consumer", cfg.Consumer, "store", cfg.Store,
		"resume_seq", c.NextSeq(), "stored_up_to", skipTo, "workers", cfg.Workers, "frame_size", cfg.FrameSize)
	start := time.Now()
	serr := make(chan error, 1)
	go func() { serr <- s.run(ctx, ordered) }()
	kerr := k.run(ctx)
	wg.Wait()
	err = errors.Join(kerr, <-serr)
	el := time.Since(start).Seconds()
	ratio := 0.0
	if st.outBytes.Load() > 0 {
		ratio = float64(st.inBytes.Load()) / float64(st.outBytes.Load())
	}
	log.Info("writer stopped", "packets", st.packets.Load(), "skipped_already_stored", st.skipped.Load(), "pcap_bytes", st.inBytes.Load(),
		"stored_bytes", st.outBytes.Load(), "ratio", fmt.Sprintf("%.2f", ratio), "frames", st.frames.Load(), "chunks", st.chunks.Load(),
		"write_retries", st.retries.Load(), "frames_stored_plain", st.plain.Load(), "MBps_in", fmt.Sprintf("%.1f", float64(st.inBytes.Load())/el/1e6), "err", err)
	return err
}
