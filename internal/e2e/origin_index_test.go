package e2e

// Origin selections planned from the index: a store whose packets came
// from several ports, directions, rules and tunnels (written into the ring
// as fwd writes them), indexed live and again by --rebuild. Each
// selection's output is byte for byte the full scan's (--no-index), and
// --explain says it read exactly the frames holding a selected packet.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket/pcapgo"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// originTable is the origins the test's packets come from.
var originTable = []chunk.PacketMeta{
	{Port: 0, Dir: 1, Rule: 1},
	{Port: 0, Dir: 2, Rule: 1},
	{Port: 1, Dir: 1, Rule: 2, Origin: origin.FromGWLB(0xe1, 0xa1, 7)},
	{Port: 1, Dir: 1, Rule: 2, Origin: origin.FromGWLB(0xe2, 0xa1, 8)},
	{Port: 2, Dir: 1, Rule: 3, Origin: origin.FromMirror(123, []byte{198, 18, 9, 1})},
	{Port: 2, Dir: 1, Rule: 3, Origin: origin.FromMirror(456, []byte{198, 18, 9, 2})},
}

// originRun is how many seqs share an origin: a multiple of the index's
// group, so that every group has one origin and a plan keeps exactly the
// groups holding a selected packet.
const originRun = 8 * segment.DefaultGroupSize

// originStore fills a ring with the packets of pcapFile, each run of
// originRun seqs from a seeded random origin of originTable, and runs the
// writer (with writerArgs) and the live indexer to the end. The origins
// are the same seq for seq on every call.
func originStore(t *testing.T, pcapFile string, writerArgs ...string) (store string, originOf func(seq uint64) int) {
	f, err := os.Open(pcapFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	ringFile := makeRing(t, "128MiB")
	r, err := shmring.Open(ringFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := r.NewProducer(shmring.Blocking)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(16))
	runs := map[uint64]int{}
	originOf = func(seq uint64) int {
		k := seq / originRun
		if _, ok := runs[k]; !ok {
			runs[k] = rng.Intn(len(originTable))
		}
		return runs[k]
	}
	for {
		data, ci, err := rd.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seq := p.NextSeq()
		m := originTable[originOf(seq)]
		if got, ok := p.WriteOrigin(ci.Timestamp.UnixNano(), uint32(ci.Length), m.Port, shmring.Dir(m.Dir), m.Rule, &m.Origin, data); !ok || got != seq {
			t.Fatalf("ring write: seq %d ok %v, want seq %d", got, ok, seq)
		}
	}
	p.Close()
	store = filepath.Join(t.TempDir(), "store")
	run(t, bin("writer"), append([]string{"--ring", ringFile, "--store", store, "--exit-on-close", "--log-level", "warn", "--metrics", "", "--frame-size", "16KiB"}, writerArgs...)...)
	run(t, bin("indexer"), "--ring", ringFile, "--store", store, "--exit-on-close", "--log-level", "warn", "--metrics", "", "--segment-packets", "8192")
	return store, originOf
}

// framesHolding counts the store's frames holding a packet whose stored
// metadata sel accepts, and those packets, from the chunks themselves.
func framesHolding(t *testing.T, store string, sel func(*chunk.PacketMeta) bool) (frames, packets int) {
	list, err := chunk.List(store)
	if err != nil {
		t.Fatal(err)
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	var m chunk.Meta
	for _, in := range list {
		r, err := chunk.OpenReader(store, in, dec)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range r.Table.Frames {
			_, mb, _, err := r.AppendFrameMeta(i, f, nil, nil)
			if err != nil || m.Parse(mb) != nil || m.Count() != f.Count {
				t.Fatalf("%s frame %d: metadata unreadable (%v)", in.Name, i, err)
			}
			n := 0
			it := m.Iter()
			for pm := (chunk.PacketMeta{}); it.Next(&pm); {
				if sel(&pm) {
					n++
				}
			}
			if n > 0 {
				frames++
				packets += n
			}
		}
		r.Close()
	}
	return frames, packets
}

func TestOriginSelectionsFromIndex(t *testing.T) {
	need(t, "tcpdump")
	store, _ := originStore(t, multiFlow(t, 60000))
	slice := func(args ...string) ([]byte, string) {
		out, stderr, code := runCode(t, bin("fmslice"), append([]string{"--store", store, "--from", "0", "--to", "now", "--explain"}, args...)...)
		if code != 0 {
			t.Fatalf("fmslice %v: exit %d: %s", args, code, stderr)
		}
		return out, stderr
	}
	read := regexp.MustCompile(`plan: (\d+) frames read, (\d+) skipped of (\d+)`)
	check := func(t *testing.T) {
		for _, c := range []struct {
			args []string
			sel  func(*chunk.PacketMeta) bool
		}{
			{[]string{"--vni", "123"}, func(m *chunk.PacketMeta) bool { v, _, ok := m.Origin.Mirror(); return ok && v == 123 }},
			{[]string{"--port", "1"}, func(m *chunk.PacketMeta) bool { return m.Port == 1 }},
			{[]string{"--gwlb-endpoint", "e2", "--direction", "in"}, func(m *chunk.PacketMeta) bool { e, _, _, ok := m.Origin.GWLB(); return ok && e == 0xe2 }},
			{[]string{"--rule", "1", "--direction", "out"}, func(m *chunk.PacketMeta) bool { return m.Rule == 1 && m.Dir == 2 }},
			{[]string{"--vni", "123,456", "--port", "0"}, func(*chunk.PacketMeta) bool { return false }},
		} {
			got, stderr := slice(c.args...)
			full, _ := slice(append(c.args, "--no-index")...)
			if !bytes.Equal(got, full) {
				t.Errorf("%v: the indexed output (%d bytes) differs from the full scan's (%d)", c.args, len(got), len(full))
			}
			frames, packets := framesHolding(t, store, c.sel)
			if n := len(pcapRecords(t, got)); n != packets {
				t.Errorf("%v: %d packets, the chunks' metadata holds %d", c.args, n, packets)
			}
			m := read.FindStringSubmatch(stderr)
			if m == nil {
				t.Fatalf("%v: no plan on stderr:\n%s", c.args, stderr)
			}
			t.Logf("%v: %d packets; %s", c.args, packets, m[0])
			if m[1] != strconv.Itoa(frames) || m[2] == "0" && frames > 0 {
				t.Errorf("%v: %s frames read (%s skipped of %s), %d frames hold a selected packet", c.args, m[1], m[2], m[3], frames)
			}
		}
		// With a filter: the index plans both; tcpdump on the full scan's
		// selection is the reference.
		for _, c := range []struct{ sel, filter []string }{
			{[]string{"--vni", "123,456"}, []string{"udp"}},
			{[]string{"--port", "0", "--direction", "in"}, []string{"tcp", "and", "port", "80"}},
		} {
			got, _ := slice(append(c.sel, c.filter...)...)
			full, _ := slice(append(c.sel, "--no-index")...)
			want := run(t, "tcpdump", append([]string{"--time-stamp-precision=nano", "-r", writeFile(t, full), "-w", "-"}, c.filter...)...)
			if !bytes.Equal(pcapBody(got), pcapBody(want)) || len(pcapRecords(t, got)) == 0 {
				t.Errorf("%v %v: indexed %d packets, tcpdump on the full scan %d (want the same, some)", c.sel, c.filter, len(pcapRecords(t, got)), len(pcapRecords(t, want)))
			}
		}
	}
	t.Run("live", check)
	// indexer --rebuild reads the origins from the chunks' metadata.
	idx := rebuildIndex(t, store)
	if segs, _ := segment.List(idx); len(segs) == 0 {
		t.Fatal("--rebuild wrote no segment")
	}
	t.Run("rebuild", check)
}

// TestFlowsByOriginFromIndex: fmslice flows --by-origin answered from the
// segments' flow origins (version 8) is the full scan's answer (an empty
// --index: every frame read), row for row in the same order, over the
// whole store or a range that cuts groups, with a filter or without; and
// still with segments missing or written as version 7 (no flow origins),
// whose seqs are then read from the chunks, and after indexer --rebuild.
func TestFlowsByOriginFromIndex(t *testing.T) {
	store, _ := originStore(t, multiFlow(t, 60000))
	si := storeInfo(t, store)
	third := (si.LastNS - si.FirstNS) / 3
	ts := func(ns int64) string { return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9) }
	noIndex := t.TempDir()
	summary := regexp.MustCompile(`(\d+) packets in (\d+) flows by origin: (\d+) counted by the index`)
	flows := func(t *testing.T, index string, args []string) (out []byte, indexed uint64) {
		a := append([]string{"flows", "--store", store, "--by-origin", "--json", "-n", "0"}, args...)
		if index != "" {
			a = append(a, "--index", index)
		}
		out, stderr, code := runCode(t, bin("fmslice"), a...)
		if code != 0 {
			t.Fatalf("fmslice %v: exit %d: %s", a, code, stderr)
		}
		m := summary.FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("fmslice %v: no summary on stderr:\n%s", a, stderr)
		}
		n, _ := strconv.ParseUint(m[3], 10, 64)
		return out, n
	}
	type row struct {
		A, B   string
		APort  uint16 `json:"a_port"`
		BPort  uint16 `json:"b_port"`
		Proto  string
		Port   string `json:"capture_port"`
		Dir    string `json:"direction"`
		Tunnel string `json:"tunnel"`
	}
	// The whole store's rows, from the scan: several origins, flows at
	// more than one.
	all, _ := flows(t, noIndex, []string{"--from", "0", "--to", "now"})
	var rows []row
	if err := json.Unmarshal(all, &rows); err != nil {
		t.Fatal(err)
	}
	origins, atFlow := map[[3]string]bool{}, map[row]int{}
	for _, r := range rows {
		origins[[3]string{r.Port, r.Dir, r.Tunnel}] = true
		atFlow[row{A: r.A, B: r.B, APort: r.APort, BPort: r.BPort, Proto: r.Proto}]++
	}
	multi := 0
	for _, n := range atFlow {
		if n > 1 {
			multi++
		}
	}
	if len(origins) < 4 || multi == 0 {
		t.Fatalf("%d rows: %d origins, %d flows at several; the test wants several of each", len(rows), len(origins), multi)
	}
	check := func(t *testing.T, fromIndex bool) {
		for _, args := range [][]string{
			{"--from", "0", "--to", "now"},
			{"--from", ts(si.FirstNS + third), "--to", ts(si.FirstNS + 2*third)},
			{"--from", "0", "--to", "now", "udp"},
			{"--from", ts(si.FirstNS + third), "--to", "now", "tcp", "and", "port", "80"},
		} {
			got, indexed := flows(t, "", args)
			want, _ := flows(t, noIndex, args)
			if !bytes.Equal(got, want) {
				t.Errorf("%v: from the index (%d bytes) differs from the scan (%d bytes)", args, len(got), len(want))
			}
			t.Logf("%v: %d packets counted by the index", args, indexed)
			if fromIndex != (indexed > 0) {
				t.Errorf("%v: %d packets counted by the index (want some: %v)", args, indexed, fromIndex)
			}
		}
	}
	idx := filepath.Join(store, "index")
	segs, err := segment.List(idx)
	if err != nil || len(segs) < 4 {
		t.Fatalf("segments %v %v", segs, err)
	}
	t.Run("index", func(t *testing.T) { check(t, true) })
	// The first segment gone (its seqs unindexed), every other one as
	// version 7 wrote it: those ranges are read, the rest still indexed.
	os.Remove(filepath.Join(idx, segs[0].Name))
	for _, s := range segs[1:] {
		asVersion7(t, filepath.Join(idx, s.Name))
		if s == segs[len(segs)-1] {
			t.Run("version 7", func(t *testing.T) { check(t, false) })
		} else if s == segs[1] {
			t.Run("mixed", func(t *testing.T) { check(t, true) })
		}
	}
	// indexer --rebuild writes version 8 from the chunks' metadata.
	rebuildIndex(t, store)
	t.Run("rebuild", func(t *testing.T) { check(t, true) })
}

// asVersion7 rewrites a segment file as version 7 wrote it, through the
// documented layout (store/segment): the flow origins (from the offset at
// 48 of version 8's 64-byte footer) dropped, the footer's first 48 bytes
// kept, the header's version and CRC and the footer's CRC redone.
func asVersion7(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	sum := func(p []byte) uint32 { return crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) }
	foot := len(b) - 8 - 64
	out := slices.Clone(b[:le.Uint64(b[foot+48:])])
	f := len(out)
	out = append(out, b[foot:foot+48]...)
	le.PutUint16(out[4:], 7)
	le.PutUint32(out[f+24:], sum(out[:64]))
	out = le.AppendUint32(out, sum(out[f:]))
	if err := os.WriteFile(path, append(out, "XIMF"...), 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestUncompressedOrigins: a --compress none store keeps every packet's
// origin in its chunks' metadata sidecars, so that what fmslice says of
// origins is the compressed store's of the same packets: pcapng output
// (interfaces, their names and options, each packet's flags and comment)
// and --port/--direction/--vni selections byte for byte, with the index and
// without; flows --by-origin from the index (the live indexer's, told the
// origins by the ring) is the scan's (an empty --index), which reads them
// from the sidecars, and the compressed store's; and indexer --rebuild
// reads them from the sidecars too.
func TestUncompressedOrigins(t *testing.T) {
	need(t, "tshark", "tcpdump")
	pcap := multiFlow(t, 30000)
	zst, _ := originStore(t, pcap)
	plain, _ := originStore(t, pcap, "--compress", "none")
	list, err := chunk.List(plain)
	if err != nil || len(list) == 0 {
		t.Fatalf("%d chunks (%v)", len(list), err)
	}
	for _, in := range list {
		if in.Zstd {
			t.Fatalf("%s: compressed", in.Name)
		}
		if st, err := os.Stat(filepath.Join(plain, in.MetaFile())); err != nil || st.Size() == 0 {
			t.Fatalf("%s: no metadata sidecar (%v)", in.Name, err)
		}
		// The chunk itself is plain pcap: tcpdump reads it.
		run(t, "tcpdump", "--count", "-r", filepath.Join(plain, in.Name))
	}
	noIndex := t.TempDir()
	fmslice := func(store string, args ...string) []byte {
		return run(t, bin("fmslice"), append([]string{"--store", store, "-q", "--from", "0", "--to", "now"}, args...)...)
	}
	check := func(t *testing.T) {
		for _, args := range [][]string{
			{"--format", "pcapng"},
			{"--format", "pcapng", "--port", "1"},
			{"--port", "1"},
			{"--direction", "out"},
			{"--port", "0", "--direction", "in", "tcp"},
			{"--vni", "123,456"},
			{"--gwlb-endpoint", "e2"},
		} {
			want := fmslice(zst, args...)
			for _, extra := range [][]string{nil, {"--no-index"}} {
				got := fmslice(plain, append(extra, args...)...)
				if !bytes.Equal(got, want) || len(want) < 1000 {
					t.Errorf("%v %v: the uncompressed store gives %d bytes, the compressed one %d (want the same, some)", args, extra, len(got), len(want))
				}
			}
		}
		// The pcapng's interfaces are the origins', not "fmcap" (origin
		// unknown).
		ng := writeFile(t, fmslice(plain, "--format", "pcapng"))
		fields := run(t, "tshark", "-r", ng, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.packet_flags_direction")
		names := map[string]bool{}
		for _, l := range strings.Split(strings.TrimRight(string(fields), "\n"), "\n") {
			names[strings.Split(l, "\t")[0]] = true
		}
		if len(names) < 4 || names["fmcap"] || !names["mirror:vni-123"] {
			t.Errorf("pcapng interfaces %v: want the origins' (mirror:vni-123 among them), none unknown", names)
		}
		for _, args := range [][]string{
			{"--from", "0", "--to", "now"},
			{"--from", "0", "--to", "now", "udp"},
		} {
			flows := func(store string, extra ...string) []byte {
				return run(t, bin("fmslice"), append(append([]string{"flows", "--store", store, "--by-origin", "--json", "-n", "0", "-q"}, args...), extra...)...)
			}
			fromIndex, scan, compressed := flows(plain), flows(plain, "--index", noIndex), flows(zst)
			if !bytes.Equal(fromIndex, scan) || !bytes.Equal(scan, compressed) || bytes.Contains(scan, []byte(`"?"`)) || len(scan) < 100 {
				t.Errorf("flows --by-origin %v: from the index %d bytes, the scan %d, the compressed store %d (want the same, no unknown origin)", args, len(fromIndex), len(scan), len(compressed))
			}
		}
	}
	t.Run("live", check)
	rebuildIndex(t, plain)
	t.Run("rebuild", check)
}

// rebuildIndex replaces the store's index with indexer --rebuild's and
// returns the index directory.
func rebuildIndex(t *testing.T, store string) string {
	idx := filepath.Join(store, "index")
	if err := os.RemoveAll(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(idx, 0o750); err != nil {
		t.Fatal(err)
	}
	run(t, bin("indexer"), "--rebuild", "--store", store, "-q", "--log-level", "warn", "--metrics", "", "--segment-packets", "8192")
	return idx
}
