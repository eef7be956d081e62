package writer

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/internal/sdnotify"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
)

// consumer turns ring records into frames.
type consumer struct {
	cfg     *Config
	c       *shmring.Consumer
	skipTo  uint64 // packets with seq <= skipTo are in the store already
	free    chan *frame
	work    chan *frame
	ordered chan *frame
	st      *stats

	cur        *frame
	target     int    // pcap bytes the current frame is cut at (sizeFrame)
	nframes    uint64 // frames begun, for the probes of sizeFrame
	groupBytes int    // pcap bytes of the last whole seq group (see add)
	groupStart int    // chunkBytes where the current seq group began, -1: unknown
	frameStart time.Time
	chunkBytes int64
	chunkStart time.Time
	inChunk    bool // a chunk is open (some frame of it was emitted)
	closed     atomic.Bool
}

// run reads until ctx is cancelled (then drains what the ring holds now) or,
// with ExitOnClose, until the producer has closed the ring and all is read.
func (k *consumer) run(ctx context.Context) error {
	defer close(k.work)
	defer close(k.ordered)
	idle := 0
	wd := sdnotify.NewWatchdog()
	var stopping bool
	var deadline time.Time
	for {
		if !stopping && ctx.Err() != nil {
			stopping, deadline = true, time.Now().Add(2*time.Second)
		}
		rec, err := k.c.Next()
		switch {
		case err == nil:
			idle = 0
			k.add(rec)
			if rec.Seq&0xffff == 0 {
				wd.Ping(time.Now())
			}
			if stopping && time.Now().After(deadline) {
				k.finish()
				return nil
			}
			continue
		case errors.Is(err, shmring.ErrEmpty):
			if stopping {
				k.finish()
				return nil
			}
			now := time.Now()
			k.tick(now)
			wd.Ping(now)
			idle = backoff(idle)
		case err == io.EOF:
			k.closed.Store(true)
			if k.cfg.ExitOnClose || stopping {
				k.finish()
				return nil
			}
			k.tick(time.Now())
			idle = backoff(idle)
		default:
			k.finish()
			return err
		}
	}
}

// backoff waits a little longer each idle round, up to 1 ms: an idle writer
// costs nothing and a busy one never sleeps.
func backoff(i int) int {
	switch {
	case i < 16:
	case i < 200:
		time.Sleep(20 * time.Microsecond)
	default:
		time.Sleep(time.Millisecond)
	}
	return i + 1
}

func (k *consumer) add(rec shmring.Record) {
	if rec.Seq <= k.skipTo {
		// Stored before a crash, cursor not yet committed: skip, but carry
		// the cursor forward with the next frame.
		k.st.skipped.Add(1)
		f := k.frame()
		f.end, f.nextSeq = rec.End, rec.Seq+1
		return
	}
	f := k.startChunk()
	if rec.Seq%chunk.SeqGroup == 0 {
		// A seq-group boundary (chunk.SeqGroup), the only place a frame
		// ends by size: here if the group starting now would not fit,
		// judging by the group just ended, so that a group the index names
		// is in one frame. A frame may hold a single group larger than
		// FrameSize (48 KB of 760-byte packets against 32 KiB frames):
		// ending frames at the size mid-group made most such groups two
		// frames to read (bench/RESULTS.md). Only a group over maxFrame is
		// cut at a packet, below.
		if k.groupStart >= 0 {
			k.groupBytes = int(k.chunkBytes) - k.groupStart
		}
		// The chunk ends at a group boundary too when the group would take
		// it past ChunkSize, so that no group is split between chunks.
		if k.chunkBytes > 0 && k.chunkBytes+int64(k.groupBytes) > k.cfg.ChunkSize {
			k.emit(true)
			f = k.startChunk()
		} else if f.meta.Count > 0 && len(f.raw)+k.groupBytes > k.target {
			k.emit(false)
			f = k.frame()
		}
		k.groupStart = int(k.chunkBytes)
	}
	n := len(f.raw)
	m := &f.meta
	var ts int64
	f.raw, ts = chunk.AppendPacket(f.raw, rec.TS, rec.WireLen, rec.Data)
	f.pm.Add(rec.Port, uint8(rec.Dir), rec.Rule, rec.OriginKind, rec.Origin)
	k.chunkBytes += int64(len(f.raw) - n)
	if m.Count == 0 {
		m.FirstSeq, m.MinTS, m.MaxTS = rec.Seq, ts, ts
		k.frameStart = time.Now()
	}
	m.LastSeq = rec.Seq
	m.Count++
	m.MinTS, m.MaxTS = min(m.MinTS, ts), max(m.MaxTS, ts)
	f.end, f.nextSeq = rec.End, rec.Seq+1
	if k.chunkBytes >= k.cfg.ChunkSize+int64(maxFrame(k.cfg.FrameSize)) {
		k.emit(true) // a chunk whose last group will not end
	} else if len(f.raw) >= maxFrame(k.cfg.FrameSize) {
		k.emit(false)
	}
}

var chunkHeader = chunk.PcapHeader()

// startChunk is frame, opening a chunk (its pcap header first) when none is.
func (k *consumer) startChunk() *frame {
	f := k.frame()
	if len(f.raw) == 0 && !k.inChunk {
		f.raw = append(f.raw, chunkHeader...)
		k.inChunk, k.chunkStart, k.chunkBytes = true, time.Now(), 0
		k.groupStart = -1 // a group left over from the last chunk says nothing
	}
	return f
}

// maxFrame is where a frame is cut whatever the seq groups: at least
// groupFrames frames' worth, so that a group of full-size packets (64 ×
// 1514 bytes, 99 KB) stays whole with 32 KiB frames, and at most the
// 1 MiB every reader accepts (chunk.MaxFrame: a frame may pass it by the
// last record and the pcap header).
func maxFrame(frameSize int) int {
	return max(frameSize, min(groupFrames*frameSize, chunk.MaxFrame-chunk.MaxRecord-len(chunkHeader)))
}

// groupFrames bounds a frame holding one long group, in frames.
const groupFrames = 8

func (k *consumer) frame() *frame {
	if k.cur == nil {
		k.cur = <-k.free
		k.cur.reset()
		k.sizeFrame(k.cur)
	}
	return k.cur
}

// sizeFrame sets the size the coming frame is cut at, and whether it is
// compressed, from the ratio of the frames compressed last (stats.ratio):
//
//   - Traffic that compresses well gets larger frames: FrameSize pcap bytes
//     or about FrameSize/2 compressed bytes, whichever is more, up to
//     growMax frame sizes (and half of maxFrame, leaving a group room).
//     Text payloads (ratio 10) so get 4 times longer frames, which
//     compress 7 % better (zstd's matches reach further; bench/RESULTS.md)
//     and are still smaller on disk than a frame of random bytes, while
//     the usual mix (ratio 2) keeps FrameSize.
//   - Traffic that does not (ratio below plainBelow: random payloads,
//     whose headers are all zstd finds) is stored in raw zstd blocks: zstd
//     took most of the writer's CPU to save a few percent of the disk.
//     One frame in probeEvery is compressed all the same, so that the
//     estimate follows the traffic when it changes.
func (k *consumer) sizeFrame(f *frame) {
	r := int(k.st.ratio.Load()) // pairs with the store in compressor.compress
	fs := k.cfg.FrameSize
	k.target = min(max(fs, fs*r/(2<<8)), growMax*fs, max(fs, maxFrame(fs)/2)) // room for a group before maxFrame
	k.nframes++
	f.plain = k.cfg.Compress && r != 0 && r < plainBelow && k.nframes%probeEvery != 0
}

const (
	growMax    = 4
	plainBelow = 282 // 1.10 in 1/256ths
	probeEvery = 8
)

// tick runs when the ring is empty: it publishes a frame that has waited
// FlushInterval (so fmslice sees recent packets) and ends a chunk that is
// ChunkAge old.
func (k *consumer) tick(now time.Time) {
	old := k.inChunk && now.Sub(k.chunkStart) >= k.cfg.ChunkAge
	if k.cur != nil && (k.cur.meta.Count > 0 && now.Sub(k.frameStart) >= k.cfg.FlushInterval || k.cur.meta.Count == 0 && k.cur.end != 0) || old {
		k.emit(old)
	}
}

func (k *consumer) emit(last bool) {
	f := k.frame()
	f.last = last && k.inChunk
	if last {
		k.inChunk = false
	}
	k.cur = nil
	f.done = ensureDone(f.done)
	if f.meta.Count > 0 {
		k.work <- f
	} else {
		f.done <- struct{}{}
	}
	k.ordered <- f
}

func ensureDone(c chan struct{}) chan struct{} {
	if c == nil {
		return make(chan struct{}, 1)
	}
	return c
}

// finish emits what is pending and ends the open chunk.
func (k *consumer) finish() {
	if k.cur != nil || k.inChunk {
		k.emit(true)
	}
}
