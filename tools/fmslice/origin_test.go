package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/store/chunk"
)

// TestNgSinkOrigins: tshark reads the pcapng interfaces, directions and
// comments fmslice writes from the stored metadata, packet by packet.
func TestNgSinkOrigins(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark is a test dependency (apt-get install tshark): %v", err)
	}
	pkts := readTestdata(t, "ns-mix-nano.pcap")[:6]
	metas := []struct {
		pm    chunk.PacketMeta
		known bool
		want  string // interface, direction, comment as tshark prints them
	}{
		{chunk.PacketMeta{Port: 0, Dir: 1, Rule: 7}, true, "g0\t0x00000001\tport=g0 dir=in rule=7"},
		{chunk.PacketMeta{Port: 0, Dir: 2, Rule: 7}, true, "g0\t0x00000002\tport=g0 dir=out rule=7"},
		{chunk.PacketMeta{Port: 0, Dir: 1, Rule: 100, Origin: origin.FromGWLB(0x0123456789abcdef, 0x42, 0xbeef)}, true,
			"gwlb:0123456789abcdef\t0x00000001\tport=g0 dir=in rule=100 gwlb endpoint=0123456789abcdef attachment=0000000000000042 cookie=0000beef"},
		{chunk.PacketMeta{Port: 3, Dir: 1, Rule: 200, Origin: origin.FromMirror(4242, []byte{198, 18, 101, 1})}, true,
			"mirror:vni-4242\t0x00000001\tport=port3 dir=in rule=200 mirror vni=4242 src=198.18.101.1"},
		{chunk.PacketMeta{Port: 1, Dir: 1, Rule: 200, Origin: origin.FromMirror(4242, []byte{198, 18, 101, 1})}, true,
			"mirror:vni-4242@m0\t0x00000001\tport=m0 dir=in rule=200 mirror vni=4242 src=198.18.101.1"},
		{chunk.PacketMeta{}, false, "fmcap\t\t"},
	}
	var buf bytes.Buffer
	s, err := newNgSink(&buf, []string{"g0", "m0"})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if err := s.writeMeta(p.ci.Timestamp.UnixNano(), uint32(p.ci.Length), p.data, &metas[i].pm, metas[i].known); err != nil {
			t.Fatal(err)
		}
	}
	s.flush()
	path := filepath.Join(t.TempDir(), "o.pcapng")
	os.WriteFile(path, buf.Bytes(), 0o600)
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.packet_flags_direction", "-e", "frame.comment").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(metas) {
		t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), len(metas), out)
	}
	for i, l := range lines {
		if l != metas[i].want {
			t.Errorf("packet %d: tshark says %q, want %q", i, l, metas[i].want)
		}
	}
}

// TestSelection: the flags' values, one or a list, select by the stored
// metadata; bad values are errors that say what is expected.
func TestSelection(t *testing.T) {
	names := []string{"g0", "m0"}
	gw := chunk.PacketMeta{Port: 0, Dir: 1, Rule: 50, Origin: origin.FromGWLB(0x0123456789abcdef, 1, 2)}
	mi := chunk.PacketMeta{Port: 1, Dir: 1, Rule: 200, Origin: origin.FromMirror(123, []byte{198, 18, 3, 1})}
	out := chunk.PacketMeta{Port: 1, Dir: 2, Rule: 7}
	for _, c := range []struct {
		flags map[string]string
		want  [3]bool // gw, mi, out
	}{
		{map[string]string{"port": "g0"}, [3]bool{true, false, false}},
		{map[string]string{"port": "1"}, [3]bool{false, true, true}},
		{map[string]string{"port": "port1"}, [3]bool{false, true, true}},
		{map[string]string{"port": "g0,m0"}, [3]bool{true, true, true}},
		{map[string]string{"direction": "in"}, [3]bool{true, true, false}},
		{map[string]string{"direction": "out"}, [3]bool{false, false, true}},
		{map[string]string{"direction": "in", "port": "m0"}, [3]bool{false, true, false}},
		{map[string]string{"rule": "50,7"}, [3]bool{true, false, true}},
		{map[string]string{"vni": "123"}, [3]bool{false, true, false}},
		{map[string]string{"vni": "124"}, [3]bool{false, false, false}},
		{map[string]string{"gwlb-endpoint": "0123456789abcdef"}, [3]bool{true, false, false}},
		{map[string]string{"gwlb-endpoint": "0x123456789abcdef"}, [3]bool{true, false, false}},
		{map[string]string{"gwlb-endpoint": "vpce-0123456789abcdef", "rule": "51"}, [3]bool{false, false, false}},
	} {
		s, err := parseSelection(c.flags, names)
		if err != nil || s == nil {
			t.Fatalf("%v: %v", c.flags, err)
		}
		for i, pm := range []chunk.PacketMeta{gw, mi, out} {
			if got := s.match(&pm, true); got != c.want[i] {
				t.Errorf("%v on %+v: got %v want %v", c.flags, pm, got, c.want[i])
			}
		}
		if s.match(&gw, false) || s.noMeta.Load() != 1 {
			t.Errorf("%v: a packet without metadata selected, or not counted", c.flags)
		}
	}
	if s, err := parseSelection(map[string]string{}, names); s != nil || err != nil {
		t.Errorf("no flags: %v %v, want no selection", s, err)
	}
	for _, bad := range []map[string]string{
		{"port": "p9"}, {"direction": "both"}, {"rule": "x"}, {"vni": "16777216"}, {"gwlb-endpoint": "vpce-xyz"}, {"vni": "1,,2"},
	} {
		if _, err := parseSelection(bad, names); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
	if _, err := parseSelection(map[string]string{"port": "g0"}, nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("port name without --config: %v", err)
	}
}

// TestNgSinkNodes: in a merge each store's packets come on interfaces of
// their own, named and described by the store's node, as tshark reads them.
func TestNgSinkNodes(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatalf("tshark is a test dependency (apt-get install tshark): %v", err)
	}
	pkts := readTestdata(t, "ns-mix-nano.pcap")[:5]
	mirror := origin.FromMirror(7, []byte{198, 18, 0, 9})
	writes := []struct {
		node  int
		pm    chunk.PacketMeta
		known bool
		want  string // interface name, its description, as tshark prints them
	}{
		{0, chunk.PacketMeta{Port: 0, Dir: 1, Rule: 1}, true, "n1/port0\tnode n1: fwd port port0 (index 0)"},
		{1, chunk.PacketMeta{Port: 0, Dir: 1, Rule: 1}, true, "/srv/b/port0\tnode /srv/b: fwd port port0 (index 0)"},
		{0, chunk.PacketMeta{Port: 0, Dir: 2, Rule: 1}, true, "n1/port0\tnode n1: fwd port port0 (index 0)"},
		{1, chunk.PacketMeta{Port: 1, Dir: 1, Rule: 2, Origin: mirror}, true, "/srv/b/mirror:vni-7\tnode /srv/b: fwd port port1 (index 1), Traffic Mirroring VNI 7 (VXLAN)"},
		{1, chunk.PacketMeta{}, false, "/srv/b/fmcap\tnode /srv/b: packets whose port and origin were not stored"},
	}
	var buf bytes.Buffer
	s, err := newNgSink(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.nodes = nodeNames([]string{"s3://bucket/fleet/n1/", "/srv/b"})
	for i, p := range pkts {
		s.node = writes[i].node
		if err := s.writeMeta(p.ci.Timestamp.UnixNano(), uint32(p.ci.Length), p.data, &writes[i].pm, writes[i].known); err != nil {
			t.Fatal(err)
		}
	}
	s.flush()
	path := filepath.Join(t.TempDir(), "o.pcapng")
	os.WriteFile(path, buf.Bytes(), 0o600)
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_description").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(writes) {
		t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), len(writes), out)
	}
	for i, l := range lines {
		if l != writes[i].want {
			t.Errorf("packet %d: tshark says %q, want %q", i, l, writes[i].want)
		}
	}
	if len(s.ifaces) != 4 {
		t.Errorf("%d interfaces, want 4 (n1's port0, /srv/b's port0, mirror and fmcap)", len(s.ifaces))
	}
}

// TestMergeKeepsMeta: the merge's batches carry each packet's stored
// metadata to the pcapng writer, and nodes of one name in two buckets are
// told apart.
func TestMergeKeepsMeta(t *testing.T) {
	s := &batchSink{ch: make(chan []mpkt, 1), quit: make(chan struct{})}
	pm := chunk.PacketMeta{Port: 3, Dir: 2, Rule: 9, Origin: origin.FromMirror(5, []byte{198, 18, 0, 1})}
	s.writeMeta(10, 60, make([]byte, 60), &pm, true)
	s.write(11, 61, make([]byte, 61))
	s.send()
	b := <-s.ch
	if len(b) != 2 || !b[0].known || b[0].pm != pm || b[1].known || b[1].ts != 11 || len(b[1].data) != 61 {
		t.Errorf("batch %+v: the metadata did not come through", b)
	}
	got := nodeNames([]string{"s3://b1/fleet/n1", "s3://b2/fleet/n1", "s3://b1/fleet/n2/", "/var/lib/fmcap/store"})
	want := []string{"s3://b1/fleet/n1", "s3://b2/fleet/n1", "n2", "/var/lib/fmcap/store"}
	if !slices.Equal(got, want) {
		t.Errorf("node names %q, want %q", got, want)
	}
}
