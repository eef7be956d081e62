package shmring

import (
	"strconv"
	"testing"

	"github.com/fmcap/fmcap/internal/origin"
)

// BenchmarkProduceConsume: one producer and one lossless consumer in one
// goroutine, batches of 64: the per-record cost of both sides, no contention.
// The cross-process figures are bench/ringbench's.
func BenchmarkProduceConsume(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			r, _ := newRing(b, Config{DataSize: 1 << 24, MaxCaplen: 2048, Consumers: []ConsumerSpec{{"w", Lossless}}})
			p, _ := r.NewProducer(Live)
			c, _ := r.Attach("w")
			pkt := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			var sum uint64
			for i := 0; i < b.N; i += 64 {
				for j := 0; j < 64; j++ {
					if _, ok := p.Write(int64(i), uint32(size), 1, DirIngress, 2, pkt); !ok {
						b.Fatal("drop")
					}
				}
				p.Publish()
				for j := 0; j < 64; j++ {
					rec, err := c.Next()
					if err != nil {
						b.Fatal(err)
					}
					sum += rec.Seq
				}
				c.Commit()
			}
		})
	}
}

// BenchmarkProduceConsumeLossy is BenchmarkProduceConsume with a lossy
// consumer, which checks for an overrun once per batch of 64 (Verify): the
// path whose ordering the overrun check depends on. The ring is big enough
// that it is never lapped.
func BenchmarkProduceConsumeLossy(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			r, _ := newRing(b, Config{DataSize: 1 << 24, MaxCaplen: 2048, Consumers: []ConsumerSpec{{"i", Lossy}}})
			p, _ := r.NewProducer(Live)
			c, _ := r.Attach("i")
			pkt := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			var sum uint64
			for i := 0; i < b.N; i += 64 {
				for j := 0; j < 64; j++ {
					if _, ok := p.Write(int64(i), uint32(size), 1, DirIngress, 2, pkt); !ok {
						b.Fatal("drop")
					}
				}
				p.Publish()
				for j := 0; j < 64; j++ {
					rec, err := c.Next()
					if err != nil {
						b.Fatal(err)
					}
					sum += rec.Seq
				}
				if err := c.Verify(); err != nil {
					b.Fatal(err)
				}
				c.Commit()
			}
		})
	}
}

// TestHotPathsDoNotAllocate pins what the benchmark reports: 0 allocations.
func TestHotPathsDoNotAllocate(t *testing.T) {
	r, _ := newRing(t, Config{DataSize: 1 << 20, MaxCaplen: 2048, Consumers: []ConsumerSpec{{"w", Lossless}, {"i", Lossy}}})
	p, _ := r.NewProducer(Live)
	c, _ := r.Attach("w")
	l, _ := r.Attach("i")
	pkt := make([]byte, 100)
	o := origin.FromGWLB(1, 2, 3)
	n := testing.AllocsPerRun(1000, func() {
		p.Write(1, 100, 0, DirIngress, 0, pkt)
		p.WriteOrigin(1, 100, 0, DirIngress, 0, &o, pkt)
		p.Publish()
		c.Next()
		c.Commit()
		l.Next()
		c.Next()
		c.Commit()
		l.Next()
		l.Verify()
		l.Commit()
	})
	if n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}
