package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"
	"github.com/google/gopacket/pcapgo"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/store/chunk"
)

type tpkt struct {
	ci   gopacket.CaptureInfo
	data []byte
}

func readTestdata(t *testing.T, names ...string) []tpkt {
	var out []tpkt
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(testpkt.Testdata(), n))
		if err != nil {
			t.Fatal(err)
		}
		r, err := testpkt.Open(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if r.Link != layers.LinkTypeEthernet {
			continue
		}
		for {
			d, ci, err := r.Next()
			if err != nil {
				break
			}
			out = append(out, tpkt{ci, d})
		}
	}
	return out
}

// Our libpcap binding gives, packet for packet, what gopacket's does (the
// reference the planner's fuzz test uses), in one batch per "frame".
func TestBPFMatchesGopacket(t *testing.T) {
	pkts := readTestdata(t, "ns-mix-nano.pcap", "ns-http.pcap", "gopacket-dns.pcap", "ns-unordered.pcap")
	if len(pkts) < 100 {
		t.Fatalf("only %d packets", len(pkts))
	}
	for _, expr := range []string{"tcp", "udp port 53", "host 198.18.1.2", "icmp or arp", "ip6", "tcp[13] & 2 != 0", "greater 200", "net 198.18.0.0/15 and not port 80"} {
		ref, err := pcap.NewBPF(layers.LinkTypeEthernet, chunk.Snaplen, expr)
		if err != nil {
			t.Fatal(err)
		}
		f, err := compileBPF(expr, chunk.Snaplen)
		if err != nil {
			t.Fatal(err)
		}
		// All packets in one buffer, as in a frame.
		var frame []byte
		var b batch
		for _, p := range pkts {
			b.add(uint32(len(frame)), uint32(len(p.data)), uint32(p.ci.Length))
			frame = append(frame, p.data...)
		}
		ok := f.match(frame, &b)
		yes := 0
		for i, p := range pkts {
			want := ref.Matches(p.ci, p.data)
			if (ok[i] != 0) != want {
				t.Fatalf("%q: packet %d: ours %v, gopacket %v", expr, i, ok[i] != 0, want)
			}
			if want {
				yes++
			}
		}
		if yes == 0 || yes == len(pkts) {
			t.Errorf("%q matches %d of %d packets: not a discriminating test", expr, yes, len(pkts))
		}
	}
	if _, err := compileBPF("host", chunk.Snaplen); err == nil || err.Error() == "" {
		t.Fatalf("bad filter: %v", err)
	}
}

// The pcapng writer's output reads back (gopacket's reader) with the same
// packets, lengths and nanosecond times.
func TestNgSinkRoundTrip(t *testing.T) {
	pkts := readTestdata(t, "ns-mix-nano.pcap")
	var buf bytes.Buffer
	s, err := newNgSink(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		wire := uint32(p.ci.Length) + uint32(i%3) // some cut packets
		if err := s.write(p.ci.Timestamp.UnixNano()+int64(i%7), wire, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions) // pcapng, not any capture
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	for i, p := range pkts {
		d, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		want := p.ci.Timestamp.UnixNano() + int64(i%7)
		if !bytes.Equal(d, p.data) || ci.Timestamp.UnixNano() != want || ci.Length != p.ci.Length+i%3 || ci.CaptureLength != len(p.data) {
			t.Fatalf("packet %d: %d bytes of %d at %v, want %d of %d at %v", i, ci.CaptureLength, ci.Length, ci.Timestamp, len(p.data), p.ci.Length+i%3, time.Unix(0, want))
		}
	}
	if _, _, err := r.ReadPacketData(); err == nil {
		t.Fatal("extra packet")
	}
}
