package e2e

// Origin selections planned from the index: a store whose packets came
// from several ports, directions, rules and tunnels (written into the ring
// as fwd writes them), indexed live and again by --rebuild. Each
// selection's output is byte for byte the full scan's (--no-index), and
// --explain says it read exactly the frames holding a selected packet.

import (
	"bytes"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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
// writer and the live indexer to the end.
func originStore(t *testing.T, pcapFile string) (store string, originOf func(seq uint64) int) {
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
	run(t, bin("writer"), "--ring", ringFile, "--store", store, "--exit-on-close", "--log-level", "warn", "--metrics", "", "--frame-size", "16KiB")
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
	idx := filepath.Join(store, "index")
	if err := os.RemoveAll(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(idx, 0o750); err != nil {
		t.Fatal(err)
	}
	run(t, bin("indexer"), "--rebuild", "--store", store, "-q", "--log-level", "warn", "--metrics", "", "--segment-packets", "8192")
	if segs, _ := segment.List(idx); len(segs) == 0 {
		t.Fatal("--rebuild wrote no segment")
	}
	t.Run("rebuild", check)
}
