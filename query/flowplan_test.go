package query

// Flow-exact plans and the timeline's per-group answers, checked against
// libpcap (gopacket's binding) on generated traffic whose answer is known
// and on the real captures' frames.

import (
	"math"
	"math/rand"
	"net"
	"os"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/store/segment"
)

// mixedFilters mix a flow part the term lists answer per group with
// another: where and over term lists keeps groups without a match.
var mixedFilters = []string{
	"(port 22 or port 6379) and net 198.18.7.0/24", "net 198.19.13.0/24 and udp",
	"tcp and port 53", "host 198.18.7.9 and port 6379", "udp and net 198.18.7.0/24 and portrange 6000-7000",
	"(tcp and port 22) or (udp and net 198.19.13.0/24)", "ip and tcp and not port 22",
	"net 198.18.7.0/24 and not udp", "src host 198.18.7.9 and port 22", "arp or (udp and port 22)",
}

// genFrames is traffic where the and of two terms often fails: hosts in
// 198.18.7.0/24, 198.19.13.0/24 and 198.18.9.0/24 talk TCP and UDP to
// ports 22, 53, 6379, 6500, 80 and 443, a flow's packets in bursts of 1 to
// 16, bursts interleaved at random; dirty adds ARP, VLAN-tagged and IPv6
// packets (1 % each), which no flow key decides.
func genFrames(t testing.TB, n int, seed int64, dirty bool) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	type flow struct {
		src, dst net.IP
		sp, dp   uint16
		udp      bool
	}
	var flows []flow
	ports := []uint16{22, 53, 6379, 6500, 80, 443}
	for i := 0; i < 400; i++ {
		nets := []string{"198.18.7.", "198.19.13.", "198.18.9."}
		src := net.ParseIP(nets[rng.Intn(3)] + itoa(1+rng.Intn(250))).To4()
		dst := net.ParseIP(nets[rng.Intn(3)] + itoa(1+rng.Intn(250))).To4()
		flows = append(flows, flow{src, dst, uint16(1024 + rng.Intn(60000)), ports[rng.Intn(len(ports))], rng.Intn(3) == 0})
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	out := make([][]byte, 0, n)
	var f flow
	burst := 0
	for i := 0; i < n; i++ {
		var ls []gopacket.SerializableLayer
		eth := &layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv4}
		if burst == 0 {
			f, burst = flows[rng.Intn(len(flows))], 1+rng.Intn(16)
		}
		burst--
		r := 100
		if dirty {
			r = rng.Intn(100)
		}
		switch {
		case r == 0:
			eth.EthernetType = layers.EthernetTypeARP
			ls = []gopacket.SerializableLayer{eth, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
				HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: mac, SourceProtAddress: f.src,
				DstHwAddress: make([]byte, 6), DstProtAddress: f.dst}}
		case r == 1:
			eth.EthernetType = layers.EthernetTypeDot1Q
			ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: f.src, DstIP: f.dst}
			tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sp), DstPort: layers.TCPPort(f.dp), ACK: true}
			tcp.SetNetworkLayerForChecksum(ip)
			ls = []gopacket.SerializableLayer{eth, &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ip, tcp}
		case r == 2:
			eth.EthernetType = layers.EthernetTypeIPv6
			ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
				SrcIP: net.ParseIP("2001:2::1"), DstIP: net.ParseIP("2001:2::" + itoa(2+rng.Intn(5)))}
			udp := &layers.UDP{SrcPort: 5000, DstPort: layers.UDPPort(f.dp)}
			udp.SetNetworkLayerForChecksum(ip)
			ls = []gopacket.SerializableLayer{eth, ip, udp}
		default:
			src, dst, sp, dp := f.src, f.dst, f.sp, f.dp
			if rng.Intn(2) == 0 {
				src, dst, sp, dp = dst, src, dp, sp
			}
			ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src, DstIP: dst}
			if f.udp {
				ip.Protocol = layers.IPProtocolUDP
				udp := &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
				udp.SetNetworkLayerForChecksum(ip)
				ls = []gopacket.SerializableLayer{eth, ip, udp}
			} else {
				ip.Protocol = layers.IPProtocolTCP
				tcp := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), ACK: true}
				tcp.SetNetworkLayerForChecksum(ip)
				ls = []gopacket.SerializableLayer{eth, ip, tcp}
			}
		}
		ls = append(ls, gopacket.Payload(make([]byte, rng.Intn(200))))
		if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf.Bytes()...))
	}
	return out
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

// writeSegments indexes frames (seqs from first, times ts(i)) into
// segments of per seqs in a new directory.
func writeSegments(t testing.TB, frames [][]byte, first uint64, per int, ts func(i int) int64) string {
	dir := t.TempDir()
	for lo := 0; lo < len(frames); lo += per {
		b := segment.NewBuilder(first+uint64(lo), segment.DefaultGroupSize)
		for i := lo; i < min(lo+per, len(frames)); i++ {
			var p segment.Packet
			DecodePacket(frames[i], &p)
			p.Wire = uint32(len(frames[i]))
			b.Add(first+uint64(i), ts(i), &p)
		}
		if _, err := b.Write(dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func inRanges(rs []SeqRange, seq uint64) bool {
	for _, r := range rs {
		if seq >= r.Lo && seq <= r.Hi {
			return true
		}
	}
	return false
}

// checkPlan checks LoadIndex on dir against libpcap: every group holding
// a match is a candidate; and with precise set, the candidates are exactly
// those groups.
func checkPlan(t *testing.T, dir string, frames [][]byte, first uint64, expr string, precise bool) (kept, termKept int) {
	t.Helper()
	bpf := compile(t, expr)
	match := map[uint64]bool{}
	for i, f := range frames {
		seq := first + uint64(i)
		if len(f) > 0 && bpf.Matches(gopacket.CaptureInfo{CaptureLength: len(f), Length: len(f)}, f) {
			match[seq/segment.DefaultGroupSize] = true
			if pl := LoadIndexCached(t, dir, expr); pl != nil && !inRanges(pl.Candidate, seq) && pl.Covers(seq, seq) {
				t.Fatalf("%q: seq %d matches (frame %x) but the plan skips it", expr, seq, f)
			}
		}
	}
	pl := LoadIndexCached(t, dir, expr)
	if pl == nil {
		return -1, -1
	}
	if precise && pl.Kept != len(match) {
		t.Errorf("%q: %d groups kept, %d hold a match (term lists: %d)", expr, pl.Kept, len(match), pl.TermKept)
	}
	return pl.Kept, pl.TermKept
}

var planCache = map[string]*Index{}

func LoadIndexCached(t testing.TB, dir, expr string) *Index {
	k := dir + "\x00" + expr
	if p, ok := planCache[k]; ok {
		return p
	}
	p := LoadIndex(dir, expr, nil, math.MinInt64, math.MaxInt64, func(err error) { t.Fatalf("refused: %v", err) })
	planCache[k] = p
	return p
}

// Plan precision: on generated traffic, for filters on flow fields only,
// the groups kept are exactly the groups holding a match; for the others
// no match is dropped, and the flow tables narrow the term lists.
func TestFlowPlanPrecision(t *testing.T) {
	frames := genFrames(t, 40000, 1, false)
	// Segments of whole groups: a group split between two segments would
	// count in both.
	dir := writeSegments(t, frames, 64, 8192, func(i int) int64 { return int64(i) })
	narrowed := 0
	for _, expr := range mixedFilters {
		_, exact := ParseExact(expr)
		kept, termKept := checkPlan(t, dir, frames, 64, expr, exact)
		if kept < termKept {
			narrowed++
		}
		t.Logf("%q: kept %d, term lists %d", expr, kept, termKept)
	}
	if narrowed < 5 {
		t.Errorf("the flow tables narrowed only %d of %d filters", narrowed, len(mixedFilters))
	}
}

// Flow-exact plans never drop a match: every filter of the planner's
// corpus and the mixed ones, over the real captures' frames, with the flow
// tables used however few groups the term lists keep.
func TestFlowPlanNeverDrops(t *testing.T) {
	defer func(n int) { minFlowNarrow = n }(minFlowNarrow)
	minFlowNarrow = 0
	frames := testpkt.Corpus(t)
	for _, f := range testpkt.Corpus(t) {
		for _, n := range []int{24, 34, 40, 54} {
			if n < len(f) {
				frames = append(frames, f[:n])
			}
		}
	}
	frames = append(frames, genFrames(t, 3000, 2, true)...)
	rand.New(rand.NewSource(3)).Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	dir := writeSegments(t, frames, 7, 4096, func(i int) int64 { return int64(i) })
	for _, expr := range append(append([]string{}, filters...), mixedFilters...) {
		checkPlan(t, dir, frames, 7, expr, false)
	}
}

// The timeline's index part: over generated traffic with times, for no
// filter and every flow-exact filter, the index's per-bucket answer plus
// libpcap's count of the packets of the groups to read give tcpdump's
// totals exactly, and each bucket edge no answered group straddles
// exactly; at the others the difference is within the straddling groups.
func TestTimelineIndexExact(t *testing.T) {
	checkTimeline(t, genFrames(t, 30000, 4, true), append([]string{""}, mixedFilters...), 400_000, 50_000_000)
}

// The same over the real captures' frames (and cut copies of them), for
// every filter of the planner's corpus.
func TestTimelineIndexExactCorpus(t *testing.T) {
	frames := testpkt.Corpus(t)
	for _, f := range testpkt.Corpus(t) {
		for _, n := range []int{24, 34, 40, 54} {
			if n < len(f) {
				frames = append(frames, f[:n])
			}
		}
	}
	checkTimeline(t, frames, append(append([]string{""}, filters...), mixedFilters...), 2_000_000, 100_000_000)
}

// checkTimeline indexes frames at random times (gaps up to maxGap ns) and
// checks the timeline of each filter in steps of step ns.
func checkTimeline(t *testing.T, frames [][]byte, exprs []string, maxGap, step int64) {
	rng := rand.New(rand.NewSource(5))
	times := make([]int64, len(frames))
	at := int64(1_767_225_600_000_000_000)
	for i := range times {
		at += rng.Int63n(maxGap)
		times[i] = at
	}
	dir := writeSegments(t, frames, 1, 8192, func(i int) int64 { return times[i] })
	from, to := times[100]-1, times[len(times)-50]
	for _, expr := range exprs {
		tl, err := NewTimeline(from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		tq := &TimelineQuery{Store: t.TempDir(), Dir: dir, From: from, To: to}
		var bpf interface {
			Matches(gopacket.CaptureInfo, []byte) bool
		}
		if expr != "" {
			bpf = compile(t, expr)
			if tq.Plan, tq.Exact = ParseExact(expr); !tq.Exact {
				tq.Plan = ParsePlan(expr)
			}
		}
		pl := tq.UseSegments(tl, nil, uint64(len(frames)))
		if len(tl.Refused)+len(tl.Notes) > 0 {
			t.Fatalf("%v %v", tl.Refused, tl.Notes)
		}
		// What fmslice reads: the seqs to read, filtered by libpcap.
		want, _ := NewTimeline(from, to, step)
		ci := func(f []byte) gopacket.CaptureInfo {
			return gopacket.CaptureInfo{CaptureLength: len(f), Length: len(f)}
		}
		for i, f := range frames {
			seq := uint64(1 + i)
			if bpf != nil && (len(f) == 0 || !bpf.Matches(ci(f), f)) {
				continue
			}
			want.Add(times[i], 1, uint64(len(f)))
			if pl.Need(seq, seq) && (!pl.Covers(seq, seq) || inRanges(pl.Must(seq, seq, nil), seq)) {
				tl.Add(times[i], 1, uint64(len(f)))
			}
		}
		// Edges straddled by a group the index answered: allowance.
		slack := make([]uint64, len(tl.Packets)+1)
		segs, _ := segment.List(dir)
		for _, e := range segs {
			s, err := segment.Open(dir, e)
			if err != nil {
				t.Fatal(err)
			}
			for g := 0; g < s.Groups(); g++ {
				lo, hi := s.GroupTimes(g)
				slo, _ := s.GroupSeqs(uint32(g))
				if lo > hi || pl.Need(slo, slo) && inRanges(pl.Must(slo, slo, nil), slo) {
					continue
				}
				for k := 1; k < len(tl.Packets); k++ {
					if edge := from + int64(k)*step; lo < edge && hi >= edge {
						slack[k] += segment.DefaultGroupSize
					}
				}
			}
			s.Close()
		}
		var gp, wp, gb, wb uint64
		exactEdges, slackEdges := 0, 0
		for k := range tl.Packets {
			gp, wp, gb, wb = gp+tl.Packets[k], wp+want.Packets[k], gb+tl.Bytes[k], wb+want.Bytes[k]
			d := int64(gp) - int64(wp)
			if slack[k+1] == 0 && k+1 < len(tl.Packets) && (d != 0 || gb != wb) {
				t.Fatalf("%q: edge %d, no group straddles it: %d packets %d bytes before it, want %d %d", expr, k+1, gp, gb, wp, wb)
			}
			if d < -int64(slack[k+1]) || d > int64(slack[k+1]) {
				t.Fatalf("%q: edge %d: %d packets before it, want %d within %d", expr, k+1, gp, wp, slack[k+1])
			}
			if slack[k+1] == 0 {
				exactEdges++
			} else {
				slackEdges++
			}
		}
		if gp != wp || gb != wb || wp == 0 && expr == "" {
			t.Fatalf("%q: totals %d packets %d bytes, want %d %d", expr, gp, gb, wp, wb)
		}
		t.Logf("%q: %d packets, %d from the index (%d groups), %d groups read; %d edges exact, %d within a group", expr, wp, tl.FromIndex, tl.GroupsIndex, tl.GroupsRead, exactEdges, slackEdges)
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
