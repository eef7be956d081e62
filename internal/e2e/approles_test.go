package e2e

// Run-time edits of the appliance roles (fmctl ports): a GWLB port's
// capture turned off and on while it goes on returning frames, and a
// mirror port's VNIs changed so that a session's frames are dropped; each
// edit is in the configuration file.
//
//	M (198.18.1.1 on vg: GENEVE sender) ──veth── T (fwd, port g0 at 198.18.1.2)
//	M (198.18.3.1 on vm: VXLAN sender)  ──veth── T (fwd, port m0 at 198.18.3.2)

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/testnet"
)

func TestApplianceEdits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	need(t, "ip")
	p := testnet.Prefix("ar")
	M, T := p+"m", p+"t"
	addNetns(t, M, T)
	for _, ns := range []string{M, T} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	for _, l := range []struct{ dev, addr, fwdAddr string }{{"vg", "198.18.1.1/24", "198.18.1.2"}, {"vm", "198.18.3.1/24", "198.18.3.2"}} {
		sh(t, "ip", "-n", M, "link", "add", l.dev, "mtu", "9000", "type", "veth", "peer", "name", l.dev, "mtu", "9000", "netns", T)
		sh(t, "ip", "-n", M, "addr", "add", l.addr, "dev", l.dev)
		sh(t, "ip", "-n", M, "link", "set", l.dev, "up")
		sh(t, "ip", "-n", T, "link", "set", l.dev, "up")
		// fwd's MAC pinned: no ARP round to wait for.
		mac, err := exec.Command("ip", "netns", "exec", T, "cat", "/sys/class/net/"+l.dev+"/address").Output()
		if err != nil {
			t.Fatal(err)
		}
		sh(t, "ip", "-n", M, "neigh", "replace", l.fwdAddr, "lladdr", strings.TrimSpace(string(mac)), "dev", l.dev, "nud", "permanent")
	}
	ring := makeRing(t, "16MiB")
	cfg := writeConfig(t, configHead(t, ring, "afpacket", nil)+`  metrics: ""
  ports:
    - name: g0
      device: vg
      addresses: [198.18.1.2/24]
      gwlb:
        rule: 100 # the GWLB target group's
    - name: m0
      device: vm
      addresses: [198.18.3.2/24]
      mirror:
        rule: 7
        vni: [123]
`)
	(&topo{t: t}).start(T, nil, bin("fwd"), "--config", cfg)
	waitControl(t, cfg)
	tp := &topo{t: t}
	if out := string(fmctl(t, cfg, "ports")); !regexp.MustCompile(`g0 +vg +gwlb +100 +ingress +65535 +- +tcp:80`).MatchString(out) ||
		!regexp.MustCompile(`m0 +vm +mirror +7 +ingress +65535 +123 +-`).MatchString(out) {
		t.Fatalf("fmctl ports:\n%s", out)
	}

	// echo sends a GWLB datagram until it is returned, and the counters
	// once fwd has published the return.
	echo := func() ctl.Stats {
		t.Helper()
		before := stats(t, cfg).Drops["gwlb_returned"]
		_, out := tp.role(M, "geneve-once", "198.18.1.1", "198.18.1.2")
		if got := line(t, out, "geneve-once"); got != "echoed" {
			t.Fatalf("GWLB datagram: %s", got)
		}
		return waitStats(t, cfg, func(s ctl.Stats) bool { return s.Drops["gwlb_returned"] > before })
	}
	s := echo()
	if s.Captured == 0 {
		t.Fatalf("capture ingress: nothing captured: %+v", s)
	}
	fmctl(t, cfg, "ports", "set-capture", "g0", "none")
	captured := s.Captured
	if s = echo(); s.Captured != captured {
		t.Errorf("capture none: captured went from %d to %d", captured, s.Captured)
	}
	fmctl(t, cfg, "ports", "set-capture", "g0", "ingress")
	if s = echo(); s.Captured <= captured {
		t.Errorf("capture ingress again: captured stays %d", s.Captured)
	}

	// vxlan sends one VXLAN datagram of session 123 and waits for fwd to
	// count it under counter.
	vxlan := func(counter string) ctl.Stats {
		t.Helper()
		before := stats(t, cfg).Drops[counter]
		_, out := tp.role(M, "vxlan-cut", "198.18.3.2", "123", "200")
		line(t, out, "vxlan-cut")
		s := waitStats(t, cfg, func(s ctl.Stats) bool { return s.Drops[counter] > before })
		if s.Drops[counter] != before+1 {
			t.Fatalf("%s: %d, want %d", counter, s.Drops[counter], before+1)
		}
		return s
	}
	s = vxlan("mirror_captured")
	fmctl(t, cfg, "ports", "set-vni", "m0", "456")
	if s = vxlan("mirror_vni_not_configured"); s.Drops["mirror_captured"] != 1 {
		t.Errorf("VNI 123 no longer configured: mirror_captured %d, want 1", s.Drops["mirror_captured"])
	}
	b, _ := os.ReadFile(cfg)
	for _, want := range []string{"rule: 100 # the GWLB target group's\n        capture: ingress", "vni: [456]", "# e2e test configuration"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the file lacks %q:\n%s", want, b)
		}
	}
}
