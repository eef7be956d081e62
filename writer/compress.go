package main

import (
	"fmt"

	"github.com/klauspost/compress/zstd"

	"fmcap/writer/chunk"
)

// compressor is one worker: it compresses and checksums frames in whatever
// order they come; store puts them back in order.
type compressor struct {
	enc *zstd.Encoder // nil in none mode
}

func newCompressor(cfg *Config) (*compressor, error) {
	if !cfg.Compress {
		return &compressor{}, nil
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(cfg.Level)),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(windowFor(cfg.FrameSize)))
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
		f.meta.DSize = uint32(len(f.raw))
		f.meta.Sum = chunk.Sum(f.raw)
		if c.enc != nil {
			f.out = c.enc.EncodeAll(f.raw, f.out[:0])
		}
		f.done <- struct{}{}
	}
}
