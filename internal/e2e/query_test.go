package e2e

// Queries that must give honest answers: times outside what pcap can hold,
// exact flows over ranges that cut segments, the store's summary, and
// fmslice's exit status when part of a range is gone or was repaired.

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/shmring"
)

// TestFarFuturePacket: packets stamped after 2106 (pcap's u32 seconds) is
// stored at the latest time pcap holds, and the live indexer and
// --rebuild index it at that same time: an indexed slice finds it exactly
// where a scan does.
func TestFarFuturePacket(t *testing.T) {
	need(t, "tcpdump")
	r := makeRing(t, "16MiB")
	st := filepath.Join(t.TempDir(), "store")
	ring, err := shmring.Open(r)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ring.NewProducer(shmring.Blocking)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	future := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := 0; i < 500; i++ {
		ts := testpkt.Base + int64(i)*1000
		if i >= 200 && i < 400 { // whole index groups of them: their group times say 2200
			ts = future + int64(i)
		}
		pk := testpkt.Packet(i, buf)
		if _, ok := p.Write(ts, uint32(len(pk)), 0, 0, 0, pk); !ok {
			t.Fatal("ring refused a packet")
		}
	}
	p.Close()
	ring.Close()
	run(t, bin("writer"), "--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--metrics", "")
	run(t, bin("indexer"), "--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--metrics", "")
	check := func(stage string) {
		for _, rng := range [][]string{
			{"--from", "2106-02-07T06:28:15Z"},
			{"--from", "2106-01-01T00:00:00Z", "--to", "2106-03-01T00:00:00Z"},
			{"--from", "2100-01-01T00:00:00Z", "--to", "2250-01-01T00:00:00Z"},
			nil,
		} {
			args := append([]string{"--store", st, "-q"}, rng...)
			want := run(t, bin("fmslice"), append(append(args, "--no-index"), "udp")...)
			got := run(t, bin("fmslice"), append(args, "udp")...)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s %v: indexed %d bytes, scanned %d", stage, rng, len(got), len(want))
			}
			n, _ := countPcap(t, got)
			if rng != nil && n != 200 || rng == nil && n != 500 {
				t.Fatalf("%s %v: %d packets", stage, rng, n)
			}
		}
	}
	check("live index")
	run(t, bin("indexer"), "--rebuild", "--store", st, "--log-level", "warn")
	check("rebuilt index")
}
