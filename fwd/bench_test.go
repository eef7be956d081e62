package fwd

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// BenchmarkDatapath is the per-packet cost of the datapath on 64-byte TCP
// packets in memory, in bursts of 32 as the backends deliver them: parse,
// rule lookup, rewrite with checksum updates, MACs, and the capture copies
// into a real ring that another goroutine drains (as the writer would).
func BenchmarkDatapath(b *testing.B) {
	for _, mode := range []Mode{ModeNone, ModeIngress, ModeInline, ModeBoth} {
		b.Run(mode.String(), func(b *testing.B) {
			h := newHarnessRing(b, true, 64<<20)
			h.setMode(b, 1, mode)
			stopConsumer := h.consume()
			// A 64-byte frame (no FCS): Ethernet, IPv4, TCP, 10 bytes of data.
			tmpl := build(eth(macA, macP0), ip(ipA, ipX, layers.IPProtocolTCP),
				&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Ack: 9, ACK: true, Window: 500}, gopacket.Payload("0123456789"))
			if len(tmpl) != 64 {
				b.Fatalf("frame is %d bytes", len(tmpl))
			}
			const burst = 32
			bufs := make([][]byte, burst)
			for i := range bufs {
				bufs[i] = make([]byte, 64)
			}
			b.SetBytes(64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += burst {
				h.d.Begin(h.d.now)
				for _, f := range bufs {
					copy(f, tmpl)
					if h.d.Handle(0, f, 64) != 1 {
						b.Fatal("not forwarded")
					}
				}
				h.d.End()
			}
			b.StopTimer()
			stopConsumer()
			b.ReportMetric(float64(h.d.c.captureDrops), "capture-drops")
		})
	}
}

// consume drains the harness's ring on another goroutine, as the writer
// would, until the returned function is called.
func (h *harness) consume() (stop func()) {
	var halt atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !halt.Load() {
			n := 0
			for ; ; n++ {
				if _, err := h.cons.Next(); err != nil {
					break
				}
			}
			h.cons.Commit()
			if n == 0 {
				time.Sleep(20 * time.Microsecond) // as the writer's poll does
			}
		}
	}()
	return func() { halt.Store(true); <-done }
}
