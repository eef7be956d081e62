package query

// The planner's promise, checked against libpcap on every frame of the
// real captures: a plan keeps every group holding a match; and flows
// decided on the key alone say what libpcap says.

import (
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcap"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/store/segment"
)

// filters the planner must be right about: indexable ones, combinations,
// and ones it must fall back on.
var filters = []string{
	"host 198.18.1.2", "src host 198.18.1.2", "dst host 198.18.2.2", "host 198.18.1.2 and port 80",
	"net 198.18.0.0/16", "net 198.18.1.0 mask 255.255.255.0", "net 198.18", "dst net 198.18.2.0/24",
	"port 53", "src port 53", "dst port 80", "portrange 1-1024", "tcp", "udp", "icmp", "icmp6",
	"ip proto 17", "ip6", "arp", "ip", "tcp port 80", "udp and port 53", "tcp or udp",
	"host 2001:2::1", "ip6 host 2001:2::2", "net 2001:2::/64", "icmp6 and host 2001:2::1",
	"not host 198.18.1.2", "not tcp", "host 198.18.1.2 and not port 80", "(tcp or icmp) and net 198.18.0.0/15",
	"vlan and host 198.18.1.2", "vlan", "ether host 02:00:00:00:00:01", "greater 1000", "tcp[tcpflags] & tcp-syn != 0",
	"host 198.18.1.2 or 198.18.2.2", "src or dst host 198.18.1.1", "ip and udp and dst port 5353",
	"sctp", "port 2000 or port 1000", "portrange 5000-5010 and udp",
	// found in review: octal numbers, non-contiguous masks, segment.IPv4-mapped
	// segment.IPv6, libpcap's ip6 proto (the first header), truncated frames
	"port 065", "ip proto 021", "portrange 010-0120", "net 198.0.1.0 mask 255.0.255.0",
	"net ::ffff:0:0/96", "ip6 proto 0", "ip6 proto 44", "ip6 proto 58",
}

// mustCover checks the planner's one promise on one frame: if libpcap's
// filter matches it, the plan keeps its group.
func mustCover(t testing.TB, frame []byte, expr string, bpf *pcap.BPF) {
	if len(frame) == 0 {
		return // gopacket's BPF cannot run on no bytes (and nothing matches them)
	}
	var p segment.Packet
	DecodePacket(frame, &p)
	b := segment.NewBuilder(1, segment.DefaultGroupSize)
	b.Add(1, 1, &p)
	s, err := segment.Decode(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	ci := gopacket.CaptureInfo{CaptureLength: len(frame), Length: len(frame)}
	if bpf.Matches(ci, frame) && !ParsePlan(expr).Groups(s).Has(0) {
		t.Fatalf("filter %q matches frame %x but the plan skips its group (decoded %+v)", expr, frame, p)
	}
}

func compile(t testing.TB, expr string) *pcap.BPF {
	bpf, err := pcap.NewBPF(layers.LinkTypeEthernet, 262144, expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	return bpf
}

func TestPlanCoversEveryMatch(t *testing.T) {
	frames := testpkt.Corpus(t)
	// Every frame cut short at a few lengths, as a small snap length or a
	// replayed capture would.
	for _, f := range testpkt.Corpus(t) {
		for _, n := range []int{15, 24, 34, 40, 54} {
			if n < len(f) {
				frames = append(frames, f[:n])
			}
		}
	}
	narrowed := 0
	for _, expr := range filters {
		bpf := compile(t, expr)
		for _, f := range frames {
			mustCover(t, f, expr, bpf)
		}
		if ParsePlan(expr).Indexed() {
			narrowed++
		}
	}
	if narrowed < 30 {
		t.Errorf("only %d of %d filters use the index", narrowed, len(filters))
	}
	for _, expr := range []string{"not tcp", "ether host 02:00:00:00:00:01", "greater 1000", "vlan", "(", "host"} {
		if ParsePlan(expr).Indexed() {
			t.Errorf("%q: the planner narrows what it cannot know", expr)
		}
	}
}

// The plan actually narrows: over the corpus split in groups, a selective
// filter keeps only the groups with a matching packet.
func TestPlanNarrows(t *testing.T) {
	frames := testpkt.Corpus(t)
	b := segment.NewBuilder(100, 4)
	for i, f := range frames {
		var p segment.Packet
		DecodePacket(f, &p)
		b.Add(100+uint64(i), int64(i), &p)
	}
	s, err := segment.Decode(b.Encode())
	if err != nil {
		t.Fatal(err)
	}
	for _, expr := range []string{"udp and port 53", "icmp6", "arp"} {
		bpf := compile(t, expr)
		want := map[int]bool{}
		for i, f := range frames {
			if bpf.Matches(gopacket.CaptureInfo{CaptureLength: len(f), Length: len(f)}, f) {
				want[i/4] = true
			}
		}
		got := ParsePlan(expr).Groups(s)
		n := 0
		for g := 0; g < s.Groups(); g++ {
			if got.Has(g) {
				n++
			}
			if want[g] && !got.Has(g) {
				t.Fatalf("%q: group %d holds a match but was skipped", expr, g)
			}
		}
		if n == s.Groups() {
			t.Errorf("%q: kept all %d groups", expr, n)
		}
		t.Logf("%q: %d of %d groups kept, %d hold matches", expr, n, s.Groups(), len(want))
	}
}

func FuzzDecodePacket(f *testing.F) {
	for i, fr := range testpkt.Corpus(f) {
		if i%5 == 0 {
			f.Add(fr)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p segment.Packet
		DecodePacket(frame, &p) // must not panic
	})
}

// FuzzPlan: for any frame and any filter libpcap compiles, the plan keeps
// every group holding a match.
func FuzzPlan(f *testing.F) {
	for i, fr := range testpkt.Corpus(f) {
		if i%9 == 0 {
			f.Add(fr, filters[i%len(filters)])
		}
	}
	cache := map[string]*pcap.BPF{}
	f.Fuzz(func(t *testing.T, frame []byte, expr string) {
		bpf, ok := cache[expr]
		if !ok {
			var err error
			if bpf, err = pcap.NewBPF(layers.LinkTypeEthernet, 262144, expr); err != nil {
				return
			}
			if len(cache) < 10000 {
				cache[expr] = bpf
			}
		}
		mustCover(t, frame, expr, bpf)
	})
}

func BenchmarkDecodePacket(b *testing.B) {
	frames := testpkt.Corpus(b)
	b.ReportAllocs()
	var p segment.Packet
	for i := 0; i < b.N; i++ {
		DecodePacket(frames[i%len(frames)], &p)
	}
}

// MatchFlow is exact: on whole, untagged, unfragmented IP packets it says
// what libpcap says, for every filter the flow table accepts.
func TestMatchFlowIsExact(t *testing.T) {
	frames := testpkt.Corpus(t)
	checked := 0
	for _, expr := range filters {
		pl, ok := ParseFilter(expr)
		if !ok || strings.Contains(expr, "src") || strings.Contains(expr, "dst") {
			continue // a flow holds both directions: src/dst mean either end there
		}
		bpf := compile(t, expr)
		for _, f := range frames {
			var p segment.Packet
			DecodePacket(f, &p)
			if (p.Kind != segment.IPv4 && p.Kind != segment.IPv6) || p.Frag || p.VLAN != 0 || (p.Proto == 6 || p.Proto == 17) && !p.Ports {
				continue
			}
			if p.Kind == segment.IPv6 && f[20] != p.Proto {
				continue // extension headers: the flow's protocol is the last header, libpcap's the first
			}
			k := segment.FlowKey{Kind: p.Kind, Proto: p.Proto, A: p.Src, B: p.Dst}
			if p.Ports {
				k.APort, k.BPort, k.Ports = p.SPort, p.DPort, true
			}
			want := bpf.Matches(gopacket.CaptureInfo{CaptureLength: len(f), Length: len(f)}, f)
			if got := pl.MatchFlow(&k); got != want {
				t.Fatalf("%q on %x: flow says %v, libpcap %v", expr, f, got, want)
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d checks", checked)
	}
}
