package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// indexedStore runs fminject → ring → writer and indexer (live, as a lossy
// consumer), both to the end, and returns the store.
func indexedStore(t *testing.T, inputs []string, writerArgs ...string) string {
	st, _ := indexedStoreRing(t, inputs, writerArgs...)
	return st
}

func indexedStoreRing(t *testing.T, inputs []string, writerArgs ...string) (string, string) {
	t.Helper()
	r := makeRing(t, "256MiB")
	st := filepath.Join(t.TempDir(), "store")
	run(t, bin("fminject"), append([]string{"--ring", r, "-q"}, inputs...)...)
	run(t, bin("writer"), append([]string{"--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--metrics", ""}, writerArgs...)...)
	run(t, bin("indexer"), "--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--segment-packets", "4096")
	return st, r
}

// multiFlow is a generated capture of many TCP and UDP flows (bench/gen).
func multiFlow(t *testing.T, n int) string {
	p := filepath.Join(t.TempDir(), "flows.pcap")
	run(t, bin("gen"), "-o", p, "-n", strconv.Itoa(n), "-flows", "300", "-duration", "20s")
	return p
}

var indexFilters = []string{
	"host 198.18.1.2", "host 198.18.1.2 and port 80", "src host 198.18.2.2", "dst host 198.18.1.1",
	"net 198.18.0.0/16", "net 198.18.7.0/24", "ip proto 17", "tcp", "udp", "icmp", "icmp6", "arp",
	"udp and port 53", "tcp and (port 80 or port 443)", "host 198.18.1.2 or host 198.18.2.2",
	"not host 198.18.1.2", "tcp and not port 80", "portrange 1000-2000",
	"host 2001:2::1", "ip6 and host 2001:2::2", "net 2001:2::/64",
	"vlan and host 198.18.1.2", "vlan", "ip[6:2] & 0x3fff != 0", "ip and ip[6:2] & 0x1fff != 0",
}

// TestIndexedSliceMatchesTcpdump: with the index, fmslice's output for each
// filter is byte for byte tcpdump's over the whole store, and the index
// skips frames for selective filters.
func TestIndexedSliceMatchesTcpdump(t *testing.T) {
	need(t, "tcpdump")
	gen := multiFlow(t, 60000)
	var in []string
	for _, c := range ethernetCaptures {
		in = append(in, testdata(c))
	}
	in = append(in, gen)
	st := indexedStore(t, in, "--frame-size", "64KiB")
	all := writeFile(t, run(t, bin("fmslice"), "--store", st, "--no-index", "-q"))
	var rx = regexp.MustCompile(`(\d+) skipped of (\d+)`)
	selective := 0
	// Pick a host and port the generated capture really has.
	hostPort := firstFlow(t, gen)
	for _, f := range append(indexFilters, hostPort...) {
		want := run(t, "tcpdump", "--time-stamp-precision=nano", "-r", all, "-w", "-", f)
		got, stderr, code := runCode(t, bin("fmslice"), "--store", st, "--explain", f)
		if code != 0 {
			t.Fatalf("%q: exit %d: %s", f, code, stderr)
		}
		if !bytes.Equal(pcapBody(got), pcapBody(want)) {
			t.Fatalf("%q: indexed output differs from tcpdump's (%d vs %d bytes)", f, len(got), len(want))
		}
		if m := rx.FindStringSubmatch(stderr); m != nil && m[1] != "0" {
			selective++
		}
	}
	if selective < 10 {
		t.Errorf("the index skipped frames for only %d filters", selective)
	}
}

// pcapBody drops the 24-byte global header: tcpdump -w writes its own
// (same magic and link type, but its own snaplen).
func pcapBody(b []byte) []byte {
	if len(b) < 24 {
		return nil
	}
	return b[24:]
}

// firstFlow returns filters for one host-and-port pair of the capture.
func firstFlow(t *testing.T, pcap string) []string {
	out := run(t, "tcpdump", "-nn", "-r", pcap, "-c", "50", "tcp")
	re := regexp.MustCompile(`IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > `)
	m := re.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no TCP flow in %s", pcap)
	}
	return []string{"host " + string(m[1]) + " and port " + string(m[2]), "src host " + string(m[1]) + " and tcp"}
}

// TestCorruptSegmentsFallBack: truncated and bit-flipped segments are
// refused by checksum and named; the query scans their range and its
// answer does not change.
func TestCorruptSegmentsFallBack(t *testing.T) {
	need(t, "tcpdump")
	st := indexedStore(t, []string{multiFlow(t, 30000)}, "--frame-size", "64KiB")
	dir := filepath.Join(st, "index")
	segs, err := segment.List(dir)
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %v %v", segs, err)
	}
	filter := "udp and portrange 1-100"
	want := run(t, bin("fmslice"), "--store", st, "--no-index", "-q", filter)
	// Segment 0: one bit of the UDP protocol's posting list (which this
	// query reads), found through the documented layout: footer at the end
	// (postings and directory offsets; 64 bytes since version 8), directory
	// entries of 24 bytes.
	p0 := filepath.Join(dir, segs[0].Name)
	b, _ := os.ReadFile(p0)
	le := binary.LittleEndian
	foot := b[len(b)-8-64:]
	postOff, dirOff := le.Uint64(foot), le.Uint64(foot[8:])
	nterms := uint64(le.Uint32(b[52:]))
	flipped := false
	for i := uint64(0); i < nterms; i++ {
		if e := b[dirOff+i*24:]; e[0] == 'T' && e[4] == 17 {
			b[postOff+uint64(le.Uint32(e[20:]))+1] ^= 4
			flipped = true
		}
	}
	if !flipped {
		t.Fatal("no UDP term in segment 0")
	}
	os.WriteFile(p0, b, 0o644)
	p1 := filepath.Join(dir, segs[1].Name)
	b, _ = os.ReadFile(p1)
	os.WriteFile(p1, b[:len(b)/3], 0o644)
	got, stderr, code := runCode(t, bin("fmslice"), "--store", st, "-q", filter)
	if code != 0 || !bytes.Equal(got, want) {
		t.Fatalf("exit %d, %d bytes, want %d: %s", code, len(got), len(want), stderr)
	}
	for _, s := range segs[:2] {
		if !strings.Contains(stderr, s.Name) || !strings.Contains(stderr, "corrupt index segment") {
			t.Fatalf("segment %s not reported: %s", s.Name, stderr)
		}
	}
	// flows reads what the refused segments covered: still exact, exit 0.
	// (Segment 0's damage is in a posting list, which flows does not read.)
	stderr = checkFlows(t, st, nil, "udp")
	if !strings.Contains(stderr, segs[1].Name) {
		t.Fatalf("flows: segment %s not reported: %s", segs[1].Name, stderr)
	}
}

// TestIndexerKilledMidStream: the indexer is killed while capture goes on
// and comes back after the ring has lapped it. Capture loses nothing (the
// indexer is lossy), the gap is recorded, queries stay complete, and
// indexer --rebuild fills the gap from the chunks.
func TestIndexerKilledMidStream(t *testing.T) {
	need(t, "tcpdump")
	gen := multiFlow(t, 200000)
	r := ringPath(t)
	run(t, bin("fmring"), "create", "--ring", r, "--size", "8MiB", "--consumer", "writer:lossless", "--consumer", "indexer:lossy")
	st := filepath.Join(t.TempDir(), "store")
	w := exec.Command(bin("writer"), "--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--metrics", "", "--frame-size", "64KiB")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	startIndexer := func() *exec.Cmd {
		c := exec.Command(bin("indexer"), "--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn", "--segment-packets", "8192")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	ix := startIndexer()
	inj := exec.Command(bin("fminject"), "--ring", r, "-q", "--pps", "100000", gen)
	if err := inj.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	ix.Process.Signal(syscall.SIGKILL)
	ix.Wait()
	time.Sleep(800 * time.Millisecond) // capture goes on; the ring laps the dead indexer
	ix = startIndexer()
	if err := inj.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := ix.Wait(); err != nil {
		t.Fatal(err)
	}
	info := string(run(t, bin("fmring"), "info", "--ring", r))
	if !strings.Contains(info, "drops 0 (0 bytes)") {
		t.Fatalf("capture dropped packets:\n%s", info)
	}
	gaps, err := os.ReadFile(filepath.Join(st, "index", "gaps.log"))
	if err != nil || !bytes.HasPrefix(gaps, []byte("missed ")) {
		t.Fatalf("no gap recorded: %v %q", err, gaps)
	}
	filters := append(firstFlow(t, gen), "udp and portrange 1-100")
	si := storeInfo(t, st)
	mid := []string{"--from", unixArg(si.FirstNS + (si.LastNS-si.FirstNS)/4), "--to", unixArg(si.FirstNS + 3*(si.LastNS-si.FirstNS)/4)}
	check := func(stage string) {
		for _, f := range filters {
			want := run(t, bin("fmslice"), "--store", st, "--no-index", "-q", f)
			got := run(t, bin("fmslice"), "--store", st, "-q", f)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: %q: indexed answer differs (%d vs %d bytes)", stage, f, len(got), len(want))
			}
		}
		// flows reads the gap: exact, exit 0.
		checkFlows(t, st, nil, "")
		checkFlows(t, st, mid, "udp")
	}
	check("with the gap")
	if covered(t, st) == 200000 {
		t.Fatal("the gap is indexed without a rebuild")
	}
	run(t, bin("indexer"), "--rebuild", "--store", st, "--log-level", "warn")
	if n := covered(t, st); n != 200000 {
		t.Fatalf("after rebuild %d of 200000 seqs indexed", n)
	}
	if after := storeInfo(t, st); si.Index.GapPackets == 0 || si.Index.Packets+si.Index.GapPackets != 200000 || after.Index.GapPackets != 0 || after.Index.Packets != 200000 {
		t.Fatalf("info: index before rebuild %+v, after %+v", si.Index, after.Index)
	}
	check("after rebuild")
}

// covered counts the seqs valid segments index (gaps excluded).
func covered(t *testing.T, st string) uint64 {
	dir := filepath.Join(st, "index")
	segs, err := segment.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, e := range segs {
		s, err := segment.Open(dir, e)
		if err != nil {
			t.Fatal(err)
		}
		n += s.Indexed
		s.Close()
	}
	return n
}

// TestRetentionRemovesIndex: chunks removed by retention take the index
// segments that reach into them along; queries stay exact.
func TestRetentionRemovesIndex(t *testing.T) {
	need(t, "tcpdump")
	st, ring := indexedStoreRing(t, []string{multiFlow(t, 40000)}, "--frame-size", "64KiB", "--compress", "none", "--chunk-size", "2MiB")
	filter := "udp and portrange 1-100"
	before := run(t, bin("fmslice"), "--store", st, "--no-index", "-q", filter)
	oldSegs, _ := segment.List(filepath.Join(st, "index"))
	if len(oldSegs) == 0 {
		t.Fatal("no segments")
	}
	stale, err := os.ReadFile(filepath.Join(st, "index", oldSegs[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	// A writer restarted with a quota: it removes the oldest chunks at once.
	run(t, bin("writer"), "--ring", ring, "--store", st, "--exit-on-close", "--log-level", "warn", "--metrics", "", "--retain-bytes", "8MiB")
	gone, err := fmstore.RemovedRanges(st)
	if err != nil || len(gone) == 0 {
		t.Fatalf("nothing removed: %v", err)
	}
	last := gone[len(gone)-1].LastSeq
	// fmslice info: what is stored and what retention removed add up to
	// what was captured.
	si := storeInfo(t, st)
	var removed uint64
	for _, r := range gone {
		removed += r.LastSeq - r.FirstSeq + 1
	}
	if n, _ := countPcap(t, run(t, bin("fmslice"), "--store", st, "--no-index", "-q")); si.Retention.Chunks != len(gone) ||
		si.Retention.Packets != removed || si.Packets != n || si.Packets+removed != 40000 {
		t.Fatalf("info %+v; retention log: %d chunks, %d packets; stored %d packets", si, len(gone), removed, n)
	}
	segs, _ := segment.List(filepath.Join(st, "index"))
	if len(segs) == 0 {
		t.Fatal("every segment went")
	}
	for _, s := range segs {
		if s.First <= last {
			t.Fatalf("segment %s still points into removed seqs ..%d", s.Name, last)
		}
	}
	got, stderr, code := runCode(t, bin("fmslice"), "--store", st, filter)
	want := run(t, bin("fmslice"), "--store", st, "--no-index", "-q", filter)
	if code != 0 || !bytes.Equal(got, want) || bytes.Equal(got, before) {
		t.Fatalf("exit %d; indexed %d bytes, scanned %d, before removal %d: %s", code, len(got), len(want), len(before), stderr)
	}
	if !strings.Contains(stderr, "removed by retention") {
		t.Fatalf("no retention note: %s", stderr)
	}
	// Index what the removed segments covered of the stored chunks; then the
	// first segment comes back, as a writer killed between removing a chunk
	// and its segments would leave it: queries stay exact, and flows neither
	// count the removed packets nor hide the removal.
	run(t, bin("indexer"), "--rebuild", "--store", st, "--log-level", "warn")
	if err := os.WriteFile(filepath.Join(st, "index", oldSegs[0].Name), stale, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, stderr, code = runCode(t, bin("fmslice"), "--store", st, "-q", filter); code != 0 || !bytes.Equal(got, want) {
		t.Fatalf("with a stale segment: exit %d, %d bytes, want %d: %s", code, len(got), len(want), stderr)
	}
	out, stderr, code := runCode(t, bin("fmslice"), "flows", "--store", st, "--json", "-n", "0", filter)
	var rows []struct{ Packets, Bytes uint64 }
	if code != 0 || json.Unmarshal(out, &rows) != nil {
		t.Fatalf("flows: exit %d: %s", code, stderr)
	}
	var pk, by uint64
	for _, r := range rows {
		pk += r.Packets
		by += r.Bytes
	}
	wpk, wby := countPcap(t, want)
	if pk != wpk || by != wby || !strings.Contains(stderr, "removed by retention") {
		t.Fatalf("flows with a stale segment: %d packets %d bytes, stored %d packets %d bytes; stderr: %s", pk, by, wpk, wby, stderr)
	}
}

// TestFlowsFromIndex: fmslice flows, from the index alone, counts exactly
// the packets and bytes tcpdump finds with the same filter.
func TestFlowsFromIndex(t *testing.T) {
	need(t, "tcpdump")
	gen := multiFlow(t, 50000)
	st := indexedStore(t, []string{gen})
	all := writeFile(t, run(t, bin("fmslice"), "--store", st, "--no-index", "-q"))
	for _, f := range append(firstFlow(t, gen)[:1], "", "udp", "tcp and not port 443", "net 198.18.0.0/24 or udp") {
		var rows []struct{ Packets, Bytes uint64 }
		args := []string{"flows", "--store", st, "--json", "-n", "0"}
		if f != "" {
			args = append(args, f)
		}
		if err := json.Unmarshal(run(t, bin("fmslice"), args...), &rows); err != nil {
			t.Fatal(err)
		}
		var pk, by uint64
		for _, r := range rows {
			pk += r.Packets
			by += r.Bytes
		}
		tf := f
		if tf == "" {
			tf = "ip or ip6"
		}
		ref := run(t, "tcpdump", "--time-stamp-precision=nano", "-r", all, "-w", "-", tf)
		wpk, wby := countPcap(t, ref)
		if pk != wpk || by != wby || wpk == 0 {
			t.Fatalf("flows %q: %d packets %d bytes; tcpdump: %d packets %d bytes", f, pk, by, wpk, wby)
		}
	}
}

func countPcap(t *testing.T, b []byte) (n, size uint64) {
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			return n, size
		}
		n++
		size += uint64(ci.Length)
	}
}

// TestLazyChunkWithDamagedTable: an indexed query reads chunks wholly inside
// its range lazily (mapped frame table, entries checked as a binary search
// touches them). A damaged entry there sends fmslice back to reading the
// chunk the ordinary way (seek table, every frame): the output stays what
// tcpdump gives, and the damage is reported.
func TestLazyChunkWithDamagedTable(t *testing.T) {
	need(t, "tcpdump")
	st := indexedStore(t, []string{multiFlow(t, 60000)}, "--frame-size", "64KiB", "--chunk-size", "4MiB")
	list, _ := chunk.List(st)
	if len(list) < 4 {
		t.Fatalf("want several chunks, got %d", len(list))
	}
	filter := firstFlow(t, multiFlowPcap(t, st))[0]
	want := run(t, bin("fmslice"), "--store", st, "--no-index", "-q", filter)
	got := run(t, bin("fmslice"), "--store", st, "-q", filter)
	if !bytes.Equal(got, want) || len(want) <= 24 {
		t.Fatalf("indexed %d bytes, scanned %d", len(got), len(want))
	}
	// Damage every entry of a middle chunk's embedded frame table (it ends
	// just before the seek table: chunk/format.go), so that whichever the
	// binary search touches fails its CRC.
	in := list[len(list)/2]
	rd, err := chunk.OpenReader(st, in, chunk.NewDecoder())
	if err != nil {
		t.Fatal(err)
	}
	n := len(rd.Table.Frames)
	rd.Close()
	path := filepath.Join(st, in.Name)
	b, _ := os.ReadFile(path)
	for k := 0; k < n; k++ {
		b[len(b)-(n*12+9)-8-(32+n*64)+32+k*64+16] ^= 1 // entry k's first seq
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, stderr, _ := runCode(t, bin("fmslice"), "--store", st, "-q", filter)
	if !bytes.Equal(got, want) {
		t.Fatalf("with a damaged table entry: %d bytes, want %d: %s", len(got), len(want), stderr)
	}
	if !strings.Contains(stderr, in.Name) || !strings.Contains(stderr, "frame table damaged") {
		t.Fatalf("damage not reported: %s", stderr)
	}
	// A rebuild leaves that chunk's frames (their seqs now unknown)
	// unindexed instead of indexing them as seqs 0..: queries scan them.
	run(t, bin("indexer"), "--rebuild", "--store", st, "--log-level", "error")
	segs, _ := segment.List(filepath.Join(st, "index"))
	for _, sg := range segs {
		if sg.First < list[0].FirstSeq {
			t.Fatalf("rebuild wrote segment %s, below the store's first seq %d", sg.Name, list[0].FirstSeq)
		}
	}
	if got, stderr, _ = runCode(t, bin("fmslice"), "--store", st, "-q", filter); !bytes.Equal(got, want) {
		t.Fatalf("after rebuild: %d bytes, want %d: %s", len(got), len(want), stderr)
	}
}

// multiFlowPcap is the whole store as one pcap file (for firstFlow).
func multiFlowPcap(t *testing.T, st string) string {
	return writeFile(t, run(t, bin("fmslice"), "--store", st, "--no-index", "-q"))
}
