package e2e

// Queries that must give honest answers: times outside what pcap can hold,
// exact flows over ranges that cut segments, the store's summary, and
// fmslice's exit status when part of a range is gone or was repaired.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/fmcap/fmcap/internal/testpkt"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
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

// flowCount is a flow's (or a total's) packets and bytes on the wire.
type flowCount struct{ Packets, Bytes uint64 }

// refFlows counts the packets tcpdump finds in a pcap for "ip or ip6",
// split by bidirectional flow with gopacket (proto, then the lower
// address and port first, as fmslice flows prints them).
func refFlows(t *testing.T, pcap []byte) (map[string]flowCount, flowCount) {
	t.Helper()
	ref := run(t, "tcpdump", "--time-stamp-precision=nano", "-r", writeFile(t, pcap), "-w", "-", "ip or ip6")
	r, err := pcapgo.NewReader(bytes.NewReader(ref))
	if err != nil {
		t.Fatal(err)
	}
	flows := map[string]flowCount{}
	var total flowCount
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pk := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		var a, b netip.Addr
		var proto uint8
		switch ip := pk.NetworkLayer().(type) {
		case *layers.IPv4:
			a, _ = netip.AddrFromSlice(ip.SrcIP.To4())
			b, _ = netip.AddrFromSlice(ip.DstIP.To4())
			proto = uint8(ip.Protocol)
		case *layers.IPv6:
			a, _ = netip.AddrFromSlice(ip.SrcIP)
			b, _ = netip.AddrFromSlice(ip.DstIP)
			proto = uint8(ip.NextHeader)
		default:
			t.Fatalf("tcpdump's ip or ip6 gave a packet gopacket does not see as IP")
		}
		var ap, bp uint16
		switch l4 := pk.TransportLayer().(type) {
		case *layers.TCP:
			ap, bp = uint16(l4.SrcPort), uint16(l4.DstPort)
		case *layers.UDP:
			ap, bp = uint16(l4.SrcPort), uint16(l4.DstPort)
		}
		a16, b16 := netip.AddrFrom16(a.As16()), netip.AddrFrom16(b.As16())
		if c := a16.Compare(b16); c > 0 || c == 0 && ap > bp {
			a, b, ap, bp = b, a, bp, ap
		}
		k := flowName(proto, a.String(), ap, b.String(), bp)
		f := flows[k]
		f.Packets++
		f.Bytes += uint64(ci.Length)
		flows[k] = f
		total.Packets++
		total.Bytes += uint64(ci.Length)
	}
	return flows, total
}

func flowName(proto uint8, a string, ap uint16, b string, bp uint16) string {
	name := map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}[proto]
	if name == "" {
		name = strconv.Itoa(int(proto))
	}
	return fmt.Sprintf("%s %s:%d %s:%d", name, a, ap, b, bp)
}

// flowsOf runs fmslice flows --json -n 0 with args and returns its flows,
// their total, stderr and exit status.
func flowsOf(t *testing.T, args ...string) (map[string]flowCount, flowCount, string, int) {
	t.Helper()
	out, stderr, code := runCode(t, bin("fmslice"), append([]string{"flows", "--json", "-n", "0"}, args...)...)
	var rows []struct {
		Proto          string
		A, B           string
		APort          uint16 `json:"a_port"`
		BPort          uint16 `json:"b_port"`
		Packets, Bytes uint64
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("flows %v: exit %d, %v: %s", args, code, err, stderr)
	}
	flows := map[string]flowCount{}
	var total flowCount
	for _, r := range rows {
		k := fmt.Sprintf("%s %s:%d %s:%d", r.Proto, r.A, r.APort, r.B, r.BPort)
		if _, dup := flows[k]; dup {
			t.Fatalf("flows %v: flow %s twice", args, k)
		}
		flows[k] = flowCount{r.Packets, r.Bytes}
		total.Packets += r.Packets
		total.Bytes += r.Bytes
	}
	return flows, total, stderr, code
}

// checkFlows compares fmslice flows over a range (args: --from/--to and a
// filter) with tcpdump on the packets fmslice --no-index extracts for it,
// flow by flow. It returns the stderr of flows.
func checkFlows(t *testing.T, st string, rng []string, filter string) string {
	t.Helper()
	args := append([]string{"--store", st}, rng...)
	var fargs []string
	if filter != "" {
		fargs = []string{filter}
	}
	got, gotTotal, stderr, code := flowsOf(t, append(args, fargs...)...)
	if code != 0 {
		t.Fatalf("flows %v %q: exit %d: %s", rng, filter, code, stderr)
	}
	want, wantTotal := refFlows(t, run(t, bin("fmslice"), append(append(args, "--no-index", "-q"), fargs...)...))
	if gotTotal != wantTotal {
		t.Fatalf("flows %v %q: %d packets %d bytes; tcpdump: %d packets %d bytes; %s", rng, filter, gotTotal.Packets, gotTotal.Bytes, wantTotal.Packets, wantTotal.Bytes, stderr)
	}
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Fatalf("flows %v %q: flow %s: %+v, tcpdump %+v", rng, filter, k, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("flows %v %q: %d flows, tcpdump %d", rng, filter, len(got), len(want))
	}
	return stderr
}

// storeInfo runs fmslice info --json.
func storeInfo(t *testing.T, st string) (si struct {
	FirstNS     int64  `json:"first_ns"`
	LastNS      int64  `json:"last_ns"`
	Packets     uint64 `json:"packets"`
	PcapBytes   uint64 `json:"pcap_bytes"`
	StoredBytes uint64 `json:"stored_bytes"`
	Chunks      int    `json:"chunks"`
	OpenChunk   bool   `json:"open_chunk"`
	Index       struct {
		Packets    uint64      `json:"packets"`
		GapPackets uint64      `json:"gap_packets"`
		Gaps       [][2]uint64 `json:"gaps"`
	} `json:"index"`
	Retention struct {
		Chunks  int    `json:"chunks"`
		Packets uint64 `json:"packets"`
	} `json:"retention"`
}) {
	t.Helper()
	if err := json.Unmarshal(run(t, bin("fmslice"), "info", "--json", "--store", st), &si); err != nil {
		t.Fatal(err)
	}
	return si
}

var readFrames = regexp.MustCompile(`read from (\d+) frames`)

// TestFlowsExactOverCutRanges: fmslice flows over ranges that cut index
// segments and groups counts, flow by flow, what tcpdump counts in the
// packets of that range, with the live indexer's small segments and after
// indexer --rebuild's large ones. fmslice info's figures are the store's.
func TestFlowsExactOverCutRanges(t *testing.T) {
	need(t, "tcpdump", "capinfos")
	gen := multiFlow(t, 60000)
	st := indexedStore(t, []string{gen}, "--frame-size", "64KiB", "--chunk-size", "4MiB")
	si := storeInfo(t, st)
	all := run(t, bin("fmslice"), "--store", st, "--no-index", "-q")
	allFile := writeFile(t, all)
	times := packetTimes(t, allFile)
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	capinfos := string(run(t, "capinfos", "-c", "-M", allFile))
	list, _ := chunk.List(st)
	var stored uint64
	for _, c := range list {
		stored += c.Size(st)
	}
	if !strings.Contains(capinfos, fmt.Sprintf("Number of packets:   %d\n", si.Packets)) || si.Packets != 60000 ||
		si.PcapBytes != uint64(len(all)) || si.FirstNS != times[0] || si.LastNS != times[len(times)-1] ||
		si.Chunks != len(list) || si.StoredBytes != stored || si.Index.Packets != si.Packets || si.Index.GapPackets != 0 {
		t.Fatalf("info %+v; store: %d chunks, %d bytes stored, %d pcap bytes, times %d..%d; capinfos: %s", si, len(list), stored, len(all), times[0], times[len(times)-1], capinfos)
	}
	first, span := si.FirstNS, si.LastNS-si.FirstNS
	at := func(f float64) string { return unixArg(first + int64(f*float64(span))) }
	host := firstFlow(t, gen)[0]
	cases := []struct {
		rng    []string
		filter string
	}{
		{[]string{"--from", at(0.37), "--to", at(0.41)}, ""},
		{[]string{"--from", at(0.13), "--to", at(0.87)}, "udp"},
		{[]string{"--from", at(0.5)}, ""},
		{[]string{"--to", at(0.02)}, "tcp and not port 443"},
		{[]string{"--from", at(0.25), "--to", at(0.75)}, host},
		{nil, ""},
	}
	check := func(stage string) {
		for i, c := range cases {
			stderr := checkFlows(t, st, c.rng, c.filter)
			m := readFrames.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("%s: no summary: %s", stage, stderr)
			}
			if i == 0 && m[1] == "0" {
				t.Fatalf("%s: a range cutting groups read no frame: %s", stage, stderr)
			}
			if c.rng == nil && m[1] != "0" {
				t.Fatalf("%s: the whole store was not answered by the index alone: %s", stage, stderr)
			}
		}
	}
	check("live index")
	run(t, bin("indexer"), "--rebuild", "--store", st, "--log-level", "warn")
	if segs, _ := os.ReadDir(filepath.Join(st, "index")); len(segs) > 3 {
		t.Fatalf("rebuild left %d files in the index", len(segs))
	}
	check("rebuilt index")
	// An empty answer says why.
	_, stderr, code := runCode(t, bin("fmslice"), "--store", st, "--from", unixArg(si.LastNS+1e9))
	if code != 0 || !strings.Contains(stderr, "outside the stored span") {
		t.Fatalf("range after the store: exit %d: %s", code, stderr)
	}
	_, stderr, code = runCode(t, bin("fmslice"), "--store", st, "--from", at(0.3), "--to", at(0.6), "host 203.0.113.77")
	if code != 0 || !strings.Contains(stderr, "no stored packet in it matches") {
		t.Fatalf("filter matching nothing: exit %d: %s", code, stderr)
	}
	_, _, stderr, code = flowsOf(t, "--store", st, "--to", unixArg(si.FirstNS-1e9))
	if code != 0 || !strings.Contains(stderr, "outside the stored span") {
		t.Fatalf("flows, range before the store: exit %d: %s", code, stderr)
	}
}

// TestFlowsLiveCapture: while fminject feeds a ring that a writer and a
// live indexer consume, fmslice flows over the last seconds (open chunk,
// not yet indexed, partly indexed) counts what tcpdump finds there, before
// and after an indexer --rebuild run meanwhile.
func TestFlowsLiveCapture(t *testing.T) {
	need(t, "tcpdump")
	gen := multiFlow(t, 40000)
	r := makeRing(t, "64MiB")
	st := filepath.Join(t.TempDir(), "store")
	start := func(name string, args ...string) {
		c := exec.Command(bin(name), args...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	start("writer", "--ring", r, "--store", st, "--log-level", "warn", "--metrics", "", "--chunk-age", "3s", "--frame-size", "64KiB")
	start("indexer", "--ring", r, "--store", st, "--log-level", "warn", "--metrics", "", "--segment-age", "2s")
	start("fminject", "--ring", r, "-q", "--now", "--pps", "20000", "--loop", "0", gen)
	// Let capture run a few seconds, then take the three seconds before
	// now once the store holds a packet after them (everything before it
	// is then stored: frames are published in seq order).
	deadline := time.Now().Add(90 * time.Second)
	var t0 int64
	for {
		if time.Now().After(deadline) {
			t.Fatal("the store did not grow to 5 s of capture within 90 s")
		}
		time.Sleep(250 * time.Millisecond)
		if _, err := os.Stat(st); err != nil {
			continue
		}
		si := storeInfo(t, st)
		if si.Packets == 0 {
			continue
		}
		if t0 == 0 {
			t0 = si.FirstNS
		}
		if si.LastNS-t0 > 5e9 {
			break
		}
	}
	for round := 0; round < 2; round++ {
		to := time.Now().UnixNano()
		for si := storeInfo(t, st); si.LastNS < to+5e8; si = storeInfo(t, st) {
			if time.Now().After(deadline) {
				t.Fatal("capture stopped reaching the store")
			}
			time.Sleep(100 * time.Millisecond)
		}
		rng := []string{"--from", unixArg(to - 3e9), "--to", unixArg(to)}
		stderr := checkFlows(t, st, rng, "")
		checkFlows(t, st, rng, "udp")
		if m := readFrames.FindStringSubmatch(stderr); m == nil || m[1] == "0" {
			t.Fatalf("the last seconds were answered without reading a frame: %s", stderr)
		}
		if round == 0 {
			// A rebuild while the writer writes: it says it leaves the
			// open chunk to the live indexer, and the answers stay exact
			// with its segments beside the live indexer's.
			// The writer rotates its chunk every 3 s, and a loaded machine
			// may catch it between two: a rebuild then finds no open chunk
			// and says nothing of one. Rebuilding again is harmless.
			for try := 1; ; try++ {
				_, stderr, code := runCode(t, bin("indexer"), "--rebuild", "--store", st, "--log-level", "warn")
				if code != 0 {
					t.Fatalf("rebuild during capture: exit %d: %s", code, stderr)
				}
				if strings.Contains(stderr, "still being written") {
					break
				}
				if try == 10 {
					t.Fatalf("10 rebuilds during capture never met the open chunk: %s", stderr)
				}
				time.Sleep(300 * time.Millisecond)
			}
		}
		time.Sleep(2 * time.Second)
	}
}

// TestExitStatus: damage from which every packet is recovered exits 0
// with a warning, in fmslice and in flows (whose index cannot be matched
// with that chunk's frames by seq any more); a frame lost exits 3, in
// both, naming the chunk.
func TestExitStatus(t *testing.T) {
	need(t, "tcpdump")
	gen := multiFlow(t, 40000)
	st := indexedStore(t, []string{gen}, "--frame-size", "64KiB", "--chunk-size", "4MiB")
	want := run(t, bin("fmslice"), "--store", st, "--no-index", "-q")
	si := storeInfo(t, st)
	mid := []string{"--from", unixArg(si.FirstNS + (si.LastNS-si.FirstNS)/3), "--to", unixArg(si.FirstNS + 2*(si.LastNS-si.FirstNS)/3)}
	list, _ := chunk.List(st)
	in := list[len(list)/2]
	rd, err := chunk.OpenReader(st, in, chunk.NewDecoder())
	if err != nil {
		t.Fatal(err)
	}
	n := len(rd.Table.Frames)
	f1 := rd.Table.Frames[1]
	rd.Close()
	path := filepath.Join(st, in.Name)
	orig, _ := os.ReadFile(path)
	// Every entry of the chunk's embedded frame table damaged: it is
	// rebuilt from the seek table, every frame found.
	b := bytes.Clone(orig)
	for k := 0; k < n; k++ {
		b[len(b)-(n*12+9)-8-(32+n*64)+32+k*64+16] ^= 1
	}
	os.WriteFile(path, b, 0o644)
	got, stderr, code := runCode(t, bin("fmslice"), "--store", st, "--no-index")
	if code != 0 || !bytes.Equal(got, want) || !strings.Contains(stderr, "warning") || !strings.Contains(stderr, in.Name) {
		t.Fatalf("repaired table: exit %d, %d bytes (want %d): %s", code, len(got), len(want), stderr)
	}
	checkFlows(t, st, nil, "") // the index answers for all: that chunk is not read
	if stderr := checkFlows(t, st, mid, ""); !strings.Contains(stderr, "index cannot be matched") || !strings.Contains(stderr, in.Name) {
		t.Fatalf("flows over a chunk whose table was rebuilt does not say so: %s", stderr)
	}
	// A frame's bytes damaged: its packets are lost.
	b = bytes.Clone(orig)
	b[f1.Off+uint64(f1.CSize/2)] ^= 0x55
	os.WriteFile(path, b, 0o644)
	_, stderr, code = runCode(t, bin("fmslice"), "--store", st, "--no-index", "-q")
	if code != 3 || !strings.Contains(stderr, in.Name) {
		t.Fatalf("lost frame: exit %d: %s", code, stderr)
	}
	// flows reads that frame when no index answers for it.
	os.RemoveAll(filepath.Join(st, "index"))
	_, _, stderr, code = flowsOf(t, "--store", st)
	if code != 3 || !strings.Contains(stderr, in.Name) || !strings.Contains(stderr, "incomplete") {
		t.Fatalf("flows over a lost frame: exit %d: %s", code, stderr)
	}
	os.WriteFile(path, orig, 0o644)
	checkFlows(t, st, mid, "tcp")
}

// TestFlowsIndexedEqualsScanned: over real captures (VLANs, IPv6 with
// extension headers, fragments, ARP, unordered times) and a generated mix,
// in segments of 4096 packets, fmslice flows with the index gives, row for
// row (packets, bytes, first and last time, TCP flags), what it gives
// reading every frame, for ranges cutting the captures anywhere.
func TestFlowsIndexedEqualsScanned(t *testing.T) {
	need(t, "tcpdump")
	var in []string
	for _, c := range ethernetCaptures {
		in = append(in, testdata(c))
	}
	in = append(in, multiFlow(t, 30000))
	st := indexedStore(t, in, "--frame-size", "64KiB", "--chunk-size", "2MiB")
	times := packetTimes(t, writeFile(t, run(t, bin("fmslice"), "--store", st, "--no-index", "-q")))
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	q := func(f float64) string { return unixArg(times[int(f*float64(len(times)-1))]) }
	rows := func(args ...string) []string { return flowRows(t, st, args...) }
	for _, rng := range [][]string{
		{"--from", q(0.1), "--to", q(0.35)},
		{"--from", q(0.02), "--to", q(0.98)},
		{"--from", q(0.5), "--to", q(0.5001)},
		{"--from", q(0.9)},
		{"--to", q(0.2)},
	} {
		for _, f := range []string{"", "udp", "ip6", "tcp and not port 80"} {
			args := rng
			if f != "" {
				args = append(append([]string(nil), rng...), f)
			}
			got := rows(args...)
			want := rows(append([]string{"--index", filepath.Join(t.TempDir(), "none")}, args...)...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("flows %v: with the index %d rows, reading every frame %d:\n%s\n---\n%s", args, len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
}

// TestFlowsAcrossStores: fmslice flows over several nodes' stores gives
// the rows of one store holding every node's packets (mergecap's merge of
// their inputs): a flow seen by two nodes is one row, its counts added.
func TestFlowsAcrossStores(t *testing.T) {
	need(t, "mergecap")
	var inputs, stores []string
	for _, n := range []string{"3000", "4000"} {
		p := filepath.Join(t.TempDir(), "in.pcap")
		// One seed: the two inputs draw the same flows (at other times),
		// so the two nodes see the same flows.
		run(t, bin("gen"), "-o", p, "-n", n, "-flows", "40", "-duration", "2s", "-seed", "7", "-start", "1767225600")
		inputs = append(inputs, p)
		stores = append(stores, indexedStore(t, []string{p}, "--frame-size", "64KiB", "--chunk-size", "128KiB"))
	}
	merged := filepath.Join(t.TempDir(), "merged.pcap")
	run(t, "mergecap", append([]string{"-F", "nsecpcap", "-w", merged}, inputs...)...)
	one := indexedStore(t, []string{merged}, "--frame-size", "64KiB", "--chunk-size", "128KiB")
	for _, f := range [][]string{nil, {"tcp"}, {"--from", "1767225600.5", "--to", "1767225601.5", "udp or port 443"}} {
		got, want := flowRows(t, strings.Join(stores, ","), f...), flowRows(t, one, f...)
		if len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("flows %v across the stores: %d rows, one store of both: %d:\n%s\n---\n%s", f, len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if _, stderr, code := runCode(t, bin("fmslice"), "flows", "--by-origin", "--store", strings.Join(stores, ",")); code == 0 || !strings.Contains(string(stderr), "one store") {
		t.Errorf("flows --by-origin over two stores: exit %d, %s", code, stderr)
	}
}

// TestInfoAcrossStores: fmslice info over several stores gives each
// store's answer and their total, equal to the sums of the stores' own.
func TestInfoAcrossStores(t *testing.T) {
	var stores []string
	for _, n := range []string{"2000", "3000"} {
		p := filepath.Join(t.TempDir(), "in.pcap")
		run(t, bin("gen"), "-o", p, "-n", n, "-flows", "40", "-duration", "2s", "-seed", n)
		stores = append(stores, indexedStore(t, []string{p}, "--frame-size", "64KiB", "--chunk-size", "128KiB"))
	}
	var one [2]map[string]any
	for i, st := range stores {
		json.Unmarshal(run(t, bin("fmslice"), "info", "--json", "--store", st), &one[i])
	}
	var both struct {
		Stores []map[string]any
		Total  map[string]any
	}
	if err := json.Unmarshal(run(t, bin("fmslice"), "info", "--json", "--store", strings.Join(stores, ",")), &both); err != nil {
		t.Fatal(err)
	}
	if len(both.Stores) != 2 || both.Total == nil {
		t.Fatalf("info over two stores: %d stores, total %v", len(both.Stores), both.Total)
	}
	for i := range 2 {
		if fmt.Sprint(both.Stores[i]) != fmt.Sprint(one[i]) {
			t.Errorf("store %d: %v, alone %v", i, both.Stores[i], one[i])
		}
	}
	for _, k := range []string{"packets", "pcap_bytes", "stored_bytes", "chunks"} {
		if both.Total[k].(float64) != one[0][k].(float64)+one[1][k].(float64) || one[0][k].(float64) == 0 {
			t.Errorf("total %s %v, the stores' %v and %v", k, both.Total[k], one[0][k], one[1][k])
		}
	}
	if both.Total["packets"].(float64) != 5000 {
		t.Errorf("total packets %v, want 5000", both.Total["packets"])
	}
	if first := min(one[0]["first_ns"].(float64), one[1]["first_ns"].(float64)); both.Total["first_ns"].(float64) != first {
		t.Errorf("total first_ns %v, want the earliest store's %v", both.Total["first_ns"], first)
	}
	text := string(run(t, bin("fmslice"), "info", "--store", strings.Join(stores, ",")))
	if strings.Count(text, "packets      ") != 3 || !strings.Contains(text, "packets      5000\n") {
		t.Errorf("info text over two stores:\n%s", text)
	}
}

// flowRows is fmslice flows --json over store (all rows), each row as
// its JSON, sorted: two answers compare as text.
func flowRows(t *testing.T, store string, args ...string) []string {
	t.Helper()
	out, stderr, code := runCode(t, bin("fmslice"), append([]string{"flows", "--json", "-n", "0", "-q", "--store", store}, args...)...)
	var rs []map[string]any
	if code != 0 || json.Unmarshal(out, &rs) != nil {
		t.Fatalf("flows --store %s %v: exit %d: %s", store, args, code, stderr)
	}
	var lines []string
	for _, r := range rs {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
	}
	sort.Strings(lines)
	return lines
}
