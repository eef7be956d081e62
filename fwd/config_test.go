package fwd

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/ctl"
)

// Every configuration error names the file, the line, and what to do.
func TestConfigErrors(t *testing.T) {
	base := `ring:
  path: /dev/shm/r
fwd:
  ports:
    - name: p0
      device: eth1
      addresses: [198.18.1.1/24]
    - name: p1
      device: eth2
      addresses: [198.18.2.1/24]
  rules:
    - id: 1
      in: p0
      local: 198.18.1.1
      peer: 198.18.1.2
      out: p1
      out_local: 198.18.2.1
      target: 198.18.2.2
`
	for _, tc := range []struct {
		name, from, to string
		line           int
		want           string
	}{
		{"unknown key", "      device: eth1", "      device: eth1\n      speed: 10G", 7, "unknown key speed: remove it"},
		{"misspelt section", "fwd:", "fwdd:\n  x: 1\nfwd:", 3, "unknown key fwdd"},
		{"bad address", "addresses: [198.18.1.1/24]", "addresses: [198.18.1.300/24]", 7, "198.18.1.300/24"},
		{"address without length", "addresses: [198.18.1.1/24]", "addresses: [198.18.1.1]", 7, "with its subnet length"},
		{"bad peer", "peer: 198.18.1.2", "peer: 198.18.1", 15, "peer: \"198.18.1\" is not an IP address"},
		{"missing port", "      out: p1", "      out: p9", 16, "port \"p9\" is not defined"},
		{"local not on port", "      local: 198.18.1.1", "      local: 198.18.1.9", 14, "not an address of port \"p0\""},
		{"target off subnet", "target: 198.18.2.2", "target: 198.18.7.2", 18, "off port \"p1\"'s subnets and the port has no gateway"},
		{"bad mode", "target: 198.18.2.2", "target: 198.18.2.2\n      capture: all", 19, "capture mode \"all\""},
		{"mixed families", "target: 198.18.2.2", "target: \"2001:2::2\"", 14, "all be IPv4 or all IPv6"},
		{"no ports", "  ports:", "  portz: []\n  ports:", 4, "unknown key portz"},
		{"overlap", "      target: 198.18.2.2\n", "      target: 198.18.2.2\n    - {id: 2, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.3}\n", 19, "rule 2 overlaps rule 1"},
		{"duplicate id", "      target: 198.18.2.2\n", "      target: 198.18.2.2\n    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.5, out: p1, out_local: 198.18.2.1, target: 198.18.2.5}\n", 19, "id already used"},
		{"bad yaml", "  rules:", "  rules: [", 0, "f.yaml"},
		{"unknown section at the end", "      target: 198.18.2.2\n", "      target: 198.18.2.2\nindexr:\n  store: /x\n", 19, "unknown key indexr"},
		{"section not a mapping", "ring:", "writer: 3\nring:", 1, "writer: expected a mapping"},
		{"second document", "      target: 198.18.2.2\n", "      target: 198.18.2.2\n---\nfwd: {}\n", 19, "a second YAML document"},
		{"device twice", "device: eth2", "device: eth1", 9, "device eth1 is port \"p0\"'s already"},
		{"peer network address", "peer: 198.18.1.2", "peer: 198.18.1.0", 15, "peer 198.18.1.0 is the network address of port \"p0\"'s subnet 198.18.1.0/24"},
		{"peer broadcast address", "peer: 198.18.1.2", "peer: 198.18.1.255", 15, "peer 198.18.1.255 is the broadcast address of port \"p0\"'s subnet 198.18.1.0/24"},
		{"target broadcast address", "target: 198.18.2.2", "target: 198.18.2.255", 18, "target 198.18.2.255 is the broadcast address of port \"p1\"'s subnet 198.18.2.0/24"},
		{"target network address", "target: 198.18.2.2", "target: 198.18.2.0", 18, "target 198.18.2.0 is the network address"},
		{"bad backend", "fwd:\n  ports:", "fwd:\n  backend: xdp\n  ports:", 4, "backend \"xdp\": use afpacket or dpdk"},
		{"bad capture_gso", "fwd:\n  ports:", "fwd:\n  capture_gso: all\n  ports:", 4, "capture_gso \"all\": use segment"},
		{"bad spin", "fwd:\n  ports:", "fwd:\n  spin: fast\n  ports:", 4, "spin \"fast\": a duration from 0 to 10ms"},
		{"bad fastpath", "fwd:\n  ports:", "fwd:\n  fastpath: on\n  ports:", 4, "fastpath \"on\": use auto"},
		{"spin too long", "fwd:\n  ports:", "fwd:\n  spin: 1s\n  ports:", 4, "spin \"1s\": a duration"},
		{"gateway of the other family", "      device: eth1", "      device: eth1\n      gateway: \"2001:2::1\"", 7, "port \"p0\" gateway \"2001:2::1\": not an IPv4 address"},
		{"gateway off the subnets", "      device: eth1", "      device: eth1\n      gateway: 198.18.9.1", 7, "gateway 198.18.9.1 is not on any of the port's subnets"},
		{"neighbor's MAC", "      device: eth1", "      device: eth1\n      neighbors: {198.18.1.2: zz}", 7, "neighbor 198.18.1.2: MAC \"zz\""},
		{"neighbor not an address", "      device: eth1", "      device: eth1\n      neighbors: {host: \"02:00:00:00:00:01\"}", 7, "neighbor \"host\": not an IP address"},
		{"port name twice", "    - name: p1", "    - name: p0", 8, "port \"p0\" defined twice"},
		{"local address twice", "addresses: [198.18.2.1/24]", "addresses: [198.18.1.1/24]", 10, "address 198.18.1.1 is already a local address of port \"p0\""},
		{"not a number", "    - id: 1", "    - id: one", 12, "id \"one\": expected a whole number"},
		{"key twice", "      peer: 198.18.1.2", "      peer: 198.18.1.2\n      peer: 198.18.1.3", 16, "peer given twice (first at line 15)"},
		{"peer is target on one port", "      out: p1\n      out_local: 198.18.2.1\n      target: 198.18.2.2", "      out: p0\n      out_local: 198.18.1.1\n      target: 198.18.1.2", 18, "peer and target are both 198.18.1.2 on port \"p0\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if src == base {
				t.Fatal("test case did not change the file")
			}
			_, _, _, err := parseConfig("f.yaml", []byte(src))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if tc.line > 0 && !strings.HasPrefix(msg, "f.yaml:"+itoa(tc.line)+":") {
				t.Errorf("error %q not at f.yaml:%d", msg, tc.line)
			}
		})
	}
	if _, _, _, err := parseConfig("f.yaml", []byte(base)); err != nil {
		t.Fatalf("base config refused: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Rule edits through the control socket swap the table, are written to
// the file with its comments kept, and survive a reload.
func TestControlEditsPersist(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fmcap.yaml")
	src := "# operator's comment\n" + testConfig
	if err := os.WriteFile(path, []byte(src), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg, ports, rules, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDatapath(ports, [][6]byte{macP0, macP1}, buildTable(ports, rules), nil, &sink{})
	c := &control{cfg: cfg, ports: ports, d: d, log: discardLogger()}
	sock := filepath.Join(dir, "s")
	if err := listenControl(sock, c); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", st.Mode().Perm(), err)
	}
	add := ctl.Rule{ID: 9, In: "p0", Local: "198.18.1.3", Peer: "198.18.1.2", Out: "p1", OutLocal: "198.18.2.1", Target: "198.18.2.9", Capture: "egress"}
	if _, err := ctl.Call(sock, ctl.Request{Cmd: "rules.add", Rule: &add}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Call(sock, ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "inline"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Call(sock, ctl.Request{Cmd: "rules.del", ID: 2}); err != nil {
		t.Fatal(err)
	}
	// Refused edits change nothing.
	bad := add
	bad.ID = 10
	if _, err := ctl.Call(sock, ctl.Request{Cmd: "rules.add", Rule: &bad}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatalf("overlapping add: %v", err)
	}
	if _, err := ctl.Call(sock, ctl.Request{Cmd: "rules.set-mode", ID: 1, Mode: "sideways"}); err == nil {
		t.Fatal("bad mode accepted")
	}
	if _, err := ctl.Call(sock, ctl.Request{Cmd: "rules.del", ID: 77}); err == nil {
		t.Fatal("deleting a missing rule accepted")
	}
	// The datapath has the new table.
	tb := d.Table()
	got := map[uint32]Mode{}
	for _, r := range tb.src {
		got[r.ID] = r.Mode
	}
	if len(got) != 3 || got[1] != ModeInline || got[9] != ModeEgress || got[3] != ModeBoth {
		t.Errorf("table after edits: %v", got)
	}
	// The file has them too, with the comment, and reloads the same.
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "# operator's comment") {
		t.Errorf("comment lost:\n%s", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("file mode changed to %v", st.Mode().Perm())
	}
	_, _, rules2, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, b)
	}
	got2 := map[uint32]Mode{}
	for _, r := range rules2 {
		got2[r.ID] = r.Mode
	}
	if len(got2) != 3 || got2[1] != ModeInline || got2[9] != ModeEgress {
		t.Errorf("reloaded rules %v\n%s", got2, b)
	}
	// A second fwd cannot take the socket over.
	if err := listenControl(sock, &control{log: discardLogger()}); err == nil || !strings.Contains(err.Error(), "another fwd") {
		t.Errorf("second listener: %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// No host has a subnet's network or broadcast address, except on the
// point-to-point lengths that have neither.
func TestSubnetEdge(t *testing.T) {
	for _, tc := range []struct {
		prefix, addr, want string
	}{
		{"198.18.1.1/24", "198.18.1.0", "network address"},
		{"198.18.1.1/24", "198.18.1.255", "broadcast address"},
		{"198.18.1.1/24", "198.18.1.254", ""},
		{"198.18.1.1/24", "198.18.2.255", ""}, // not on the subnet: the gateway's business
		{"198.18.1.1/30", "198.18.1.3", "broadcast address"},
		{"198.18.1.1/30", "198.18.1.2", ""},
		{"198.18.1.0/31", "198.18.1.1", ""}, // RFC 3021
		{"198.18.1.0/31", "198.18.1.0", ""},
		{"198.18.0.1/15", "198.19.255.255", "broadcast address"},
		{"2001:2:0:1::1/64", "2001:2:0:1::", "subnet-router anycast (network) address"},
		{"2001:2:0:1::1/64", "2001:2:0:1:ffff:ffff:ffff:ffff", ""}, // IPv6 has no broadcast
		{"2001:2:0:1::1/127", "2001:2:0:1::", ""},                  // RFC 6164
	} {
		p := Port{Prefixes: []netip.Prefix{netip.MustParsePrefix(tc.prefix)}}
		if _, got := p.subnetEdge(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s in %s: got %q, want %q", tc.addr, tc.prefix, got, tc.want)
		}
	}
}

// fwd's Config has a field for each section every other command accepts
// (cliutil.Sections), so that one file passes everywhere or nowhere.
func TestConfigSections(t *testing.T) {
	var got []string
	ty := reflect.TypeOf(Config{})
	for i := 0; i < ty.NumField(); i++ {
		if tag := ty.Field(i).Tag.Get("yaml"); tag != "" {
			got = append(got, tag)
		}
	}
	if !slices.Equal(got, cliutil.Sections) {
		t.Errorf("fwd's sections %v, cliutil.Sections %v", got, cliutil.Sections)
	}
}

// A DPDK port's mtu outside its PMD's range is refused naming the port,
// the device, the driver and the range; a PMD that gives no range (0, or
// lo > hi) and a port without mtu are let through.
func TestMTUInRange(t *testing.T) {
	p := Port{Name: "p0", Device: "0000:3b:00.0", MTU: 9600}
	err := mtuInRange(2, p, "net_i40e", 68, 9702)
	if err != nil {
		t.Fatalf("in range: %v", err)
	}
	for _, c := range []struct {
		mtu, lo, hi int
		want        string // "" accepted
	}{
		{9703, 68, 9702, "mtu 9703 is outside what its PMD net_i40e takes, 68..9702"},
		{1500, 1600, 9000, "mtu 1500 is outside what its PMD net_i40e takes, 1600..9000"},
		{68, 68, 68, ""},
		{0, 1000, 2000, ""},
		{9000, 0, 0, ""},
		{9000, 2000, 1000, ""},
	} {
		p.MTU = c.mtu
		err := mtuInRange(2, p, "net_i40e", c.lo, c.hi)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("mtu %d in %d..%d: %v", c.mtu, c.lo, c.hi, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "port p0 (device 0000:3b:00.0, fwd.ports[2])")):
			t.Errorf("mtu %d in %d..%d: got %v, want %q naming the port", c.mtu, c.lo, c.hi, err, c.want)
		}
	}
}

// TestSpinSetting: fwd.spin is read as a duration, and is 0 when absent.
func TestSpinSetting(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want time.Duration
	}{{"", 0}, {"  spin: 50us\n", 50 * time.Microsecond}, {"  spin: 0s\n", 0}} {
		c, _, _, err := parseConfig("t.yaml", []byte(strings.Replace(testConfig, "fwd:\n", "fwd:\n"+tc.set, 1)))
		if err != nil || c.Fwd.spin != tc.want {
			t.Errorf("%q: spin %v, err %v; want %v", tc.set, c.Fwd.spin, err, tc.want)
		}
	}
}
