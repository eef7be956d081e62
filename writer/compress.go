package writer

import (
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/fmcap/fmcap/store/chunk"
)

// compressor is one worker: it compresses and checksums frames in whatever
// order they come; store puts them back in order.
type compressor struct {
	enc *zstd.Encoder // nil in none mode
	st  *stats        // ratio: the estimate consume sizes frames by
}

func newCompressor(cfg *Config) (*compressor, error) {
	if !cfg.Compress {
		return &compressor{}, nil
	}
	opts := []zstd.EOption{
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(windowFor(maxFrame(cfg.FrameSize))),
	}
	switch cfg.Level {
	case 1:
		// Captures are mostly encrypted or binary payloads, whose literals
		// Huffman coding cannot shrink: skipping it doubles the speed at the
		// same ratio on such traffic (bench/RESULTS.md); text loses ~14%.
		opts = append(opts, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithNoEntropyCompression(true))
	case 2:
		opts = append(opts, zstd.WithEncoderLevel(zstd.SpeedFastest))
	case 3:
		opts = append(opts, zstd.WithEncoderLevel(zstd.SpeedDefault))
	default:
		opts = append(opts, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	}
	enc, err := zstd.NewWriter(nil, opts...)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &compressor{enc: enc}, nil
}

// windowFor is the smallest zstd window that holds a whole frame: frames are
// independent, so a larger window only costs memory.
func windowFor(frameSize int) int {
	w := zstd.MinWindowSize
	for w < frameSize+chunk.MaxRecord && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

func (c *compressor) run(work <-chan *frame) {
	for f := range work {
		c.compress(f)
		f.done <- struct{}{}
	}
}

// compress makes f's stored bytes (zstd mode: its metadata frame and its
// zstd frame, in out; none mode: its metadata frame in out, for the chunk's
// sidecar) and fills in its size and checksum.
func (c *compressor) compress(f *frame) {
	f.meta.DSize = uint32(len(f.raw))
	// The metadata frame first, then (zstd mode) the zstd frame after it in
	// the same buffer: the frame's bytes as stored.
	f.out = f.pm.AppendFrame(f.out[:0])
	f.meta.Meta = uint32(len(f.out))
	if c.enc != nil {
		if f.plain {
			f.out, f.meta.Sum = chunk.AppendStored(f.out, f.raw)
			if c.st != nil {
				c.st.plain.Add(1)
			}
			return
		}
		f.out = c.enc.EncodeAll(f.raw, f.out)
		// A zstd frame's content checksum is the low 32 bits of the
		// XXH64 of its content: the seekable format's checksum, already
		// computed, in the frame's last 4 bytes.
		f.meta.Sum = binary.LittleEndian.Uint32(f.out[len(f.out)-4:])
		// The ratio that sizes the next frames (consumer.sizeFrame) is
		// taken from frames of some size only: a frame the flush timer
		// cut on a quiet link holds a few packets, and a lone 66-byte
		// ACK "compresses" to more than it was, which would have the
		// next frames of compressible traffic stored raw.
		if c.st != nil && len(f.raw) >= ratioSampleMin {
			z := uint64(len(f.out)) - uint64(f.meta.Meta)
			c.st.ratio.Store(uint32(min(uint64(len(f.raw))<<8/z, 1<<24))) // pairs with the load in consumer.sizeFrame
		}
	} else {
		f.meta.Sum = chunk.Sum(f.raw)
	}
}

// ratioSampleMin is the smallest frame whose compression ratio sizes the
// next ones: the smallest --frame-size.
const ratioSampleMin = 16 << 10
