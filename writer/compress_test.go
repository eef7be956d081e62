package writer

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"testing"

	"github.com/fmcap/fmcap/store/chunk"
)

// mixFrames is about size bytes of pcap records in bench/gen's web mix
// sizes (40 % 66-byte ACKs, 45 % 1514-byte segments, 15 % 80..399-byte
// UDP), the segments' payloads random, text (HTTP/JSON lines with varying
// numbers, as bench/gen writes) or half each, cut into frames of frameSize
// bytes at packet boundaries.
func mixFrames(payload string, size, frameSize int) [][]byte {
	rng := rand.New(rand.NewSource(5))
	pkt := make([]byte, 1514)
	var frames [][]byte
	var cur []byte
	for n := 0; n < size; {
		l, x := 1514, rng.Intn(100)
		switch {
		case x < 40:
			l = 66
		case x >= 85:
			l = 80 + rng.Intn(320)
		}
		p := pkt[:l]
		binary.BigEndian.PutUint64(p[:8], rng.Uint64()) // headers: a few varying bytes
		for i := 8; i < min(54, l); i++ {
			p[i] = byte(i)
		}
		if l > 66 {
			text := payload == "text" || payload == "mixed" && rng.Intn(2) == 0
			if !text || l < 1514 {
				rng.Read(p[54:])
			} else {
				s := fmt.Appendf(nil, "GET /api/v1/items?id=%d HTTP/1.1\r\nHost: svc%d.example\r\nUser-Agent: fmcap-bench\r\nAccept: application/json\r\n\r\n"+
					`{"id":%d,"name":"item-%d","price":%d.%02d,"tags":["a","b"],"ok":true}`+"\n",
					rng.Intn(1e6), rng.Intn(50), rng.Intn(1e6), rng.Intn(1e5), rng.Intn(1e4), rng.Intn(100))
				for k := 54; k < l; k += len(s) {
					copy(p[k:], s)
				}
			}
		}
		b, _ := chunk.AppendPacket(cur, int64(n)*1000, uint32(l), p)
		n += len(b) - len(cur)
		cur = b
		if len(cur) >= frameSize {
			frames = append(frames, cur)
			cur = nil
		}
	}
	return frames
}

// BenchmarkCompress: one worker's speed (pcap bytes in) and the ratio, by
// payload, level and frame size. The writer runs one such worker per core.
func BenchmarkCompress(b *testing.B) {
	for _, payload := range []string{"random", "text", "mixed"} {
		for _, level := range []int{1, 2} {
			for _, fs := range []int{32 << 10, 128 << 10, 512 << 10} {
				b.Run(fmt.Sprintf("%s/level=%d/frame=%dKiB", payload, level, fs>>10), func(b *testing.B) {
					frames := mixFrames(payload, 8<<20, fs)
					c, err := newCompressor(&Config{Compress: true, Level: level, FrameSize: fs})
					if err != nil {
						b.Fatal(err)
					}
					f := &frame{out: make([]byte, 0, 2*fs)} // as a pooled frame's, grown already
					f.raw = frames[0]
					c.compress(f) // the encoder's tables are made on first use
					in, out := 0, 0
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						f.raw = frames[i%len(frames)]
						c.compress(f)
						in += len(f.raw)
						out += len(f.out)
					}
					b.SetBytes(int64(in / b.N))
					b.ReportMetric(float64(in)/float64(out), "ratio")
				})
			}
		}
	}
}

// TestRatioFromFullFrames: the ratio that sizes the next frames comes from
// frames of some size, not from a few packets the flush timer cut (a lone
// ACK grows when compressed), which would have compressible traffic stored
// raw after every quiet spell.
func TestRatioFromFullFrames(t *testing.T) {
	c, err := newCompressor(&Config{Compress: true, Level: 1, FrameSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	c.st = &stats{}
	f := &frame{raw: mixFrames("text", 1<<20, 32<<10)[0]}
	c.compress(f)
	text := c.st.ratio.Load()
	if text < plainBelow*4 {
		t.Fatalf("text frame: ratio %d/256, want far above %d", text, plainBelow)
	}
	f.raw = f.raw[:82] // one small packet's record: larger compressed than raw
	c.compress(f)
	if got := c.st.ratio.Load(); got != text {
		t.Errorf("a small frame moved the ratio from %d to %d", text, got)
	}
}
