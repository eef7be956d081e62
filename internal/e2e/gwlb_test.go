package e2e

// fwd as an AWS Gateway Load Balancer appliance, in namespaces:
//
//	C (client 198.18.0.2) ── G (gwlbsim: GWLB stand-in, 198.18.1.1) ── A (fwd, port gwlb at 198.18.1.2, MTU 9000)
//	                          └── S (server 198.18.2.2)
//
// gwlbsim (bench/gwlbsim) wraps every packet between C and S in GENEVE with
// GWLB's options, as GWLB does, sends it to fwd, and checks each returned
// datagram against what it sent (options and outer 5-tuple); fwd captures
// the inner packets into the ring, the writer stores them with their GENEVE
// identity (endpoint id, attachment id, flow cookie), which fmslice's
// pcapng output and --gwlb-endpoint show and select.

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/testnet"
)

// gwlbDatagram is a GENEVE datagram as GWLB sends it (its three options,
// then extra), carrying an IPv4/UDP packet (whose checksums do not matter
// to the appliance).
func gwlbDatagram(cookieClass uint16, cookie bool, extra ...[]byte) []byte {
	inner := []byte{0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 198, 18, 0, 2, 198, 18, 2, 2, 0x30, 0x39, 0, 53, 0, 12, 0, 0, 'p', 'r', 'o', 'b'}
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	o := append(geneveOpt(0x0108, 1, u64(0x1111)), geneveOpt(0x0108, 2, u64(0x2222))...)
	if cookie {
		o = append(o, geneveOpt(cookieClass, 3, []byte{0, 0, 0x33, 0x33})...)
	}
	for _, x := range extra {
		o = append(o, x...)
	}
	h := []byte{byte(len(o) / 4), 0, 0x08, 0x00, 0, 0, 0, 0}
	return append(append(h, o...), inner...)
}

func geneveOpt(class uint16, typ byte, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, class)
	return append(append(b, typ, byte(len(data)/4)), data...)
}

// geneveEcho sends d from c to the appliance each second (a loaded machine
// may not run the appliance for a while) until it comes back, for up to
// 20 s: "echoed", "none" or what came back instead.
func geneveEcho(c *net.UDPConn, to *net.UDPAddr, d []byte) (string, error) {
	buf := make([]byte, 2048)
	for try := 0; try < 20; try++ {
		if _, err := c.WriteToUDP(d, to); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, from, err := c.ReadFromUDP(buf); err == nil {
			if !(from.Port == 6081 && from.IP.Equal(to.IP) && string(buf[:n]) == string(d)) {
				return fmt.Sprintf("changed from %v: %x", from, buf[:n]), nil
			}
			return "echoed", nil
		}
	}
	return "none", nil
}

// geneveOnce sends one GWLB datagram from local:6081 to the appliance
// until it is echoed, and prints geneveEcho's answer.
func geneveOnce(local, appliance string) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(local), Port: 6081})
	if err != nil {
		return err
	}
	defer c.Close()
	got, err := geneveEcho(c, &net.UDPAddr{IP: net.ParseIP(appliance), Port: 6081}, gwlbDatagram(0x0108, true))
	fmt.Println(got)
	return err
}

// geneveProbe sends three GENEVE datagrams from local:6081 to the
// appliance, one at a time, and prints for each "echoed", "changed" or
// "none" (nothing back in a second): a GWLB datagram with an extra option
// (to be echoed unchanged), one without its flow cookie and one whose
// cookie has another class (to be dropped).
func geneveProbe(local, appliance string) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(local), Port: 6081})
	if err != nil {
		return err
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.ParseIP(appliance), Port: 6081}
	echo := gwlbDatagram(0x0108, true, geneveOpt(0x0101, 0x05, []byte{1, 2, 3, 4})) // unknown, not critical: echoed
	buf := make([]byte, 2048)
	// await reads until wait has passed, skipping late copies of the echo;
	// it returns what came back, or nil.
	await := func(wait time.Duration) ([]byte, *net.UDPAddr) {
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return nil, nil
			}
			if string(buf[:n]) == string(echo) {
				continue
			}
			return buf[:n], from
		}
	}
	got, err := geneveEcho(c, to, echo)
	if err != nil {
		return err
	}
	fmt.Println(got)
	// Frames to be dropped: nothing but late echoes may come back in 2 s.
	for _, d := range [][]byte{
		gwlbDatagram(0x0108, false), // no flow cookie
		gwlbDatagram(0x0109, true),  // cookie under another class
	} {
		if _, err := c.WriteToUDP(d, to); err != nil {
			return err
		}
		if b, from := await(2 * time.Second); b != nil {
			fmt.Printf("changed from %v: %x\n", from, b)
		} else {
			fmt.Println("none")
		}
	}
	return nil
}

// pcapRecords splits a little-endian pcap into its records' bytes.
func pcapRecords(t *testing.T, pcap []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for off := 24; off < len(pcap); {
		if off+16 > len(pcap) {
			t.Fatalf("pcap cut in a record header at %d", off)
		}
		incl := int(binary.LittleEndian.Uint32(pcap[off+8:]))
		if off+16+incl > len(pcap) {
			t.Fatalf("pcap cut in a record at %d", off)
		}
		out = append(out, pcap[off+16:off+16+incl])
		off += 16 + incl
	}
	return out
}

type gwlbTopo struct {
	t          *testing.T
	C, G, A, S string
}

// newGWLBTopo builds the namespaces of the file comment, with the kernel's
// default offloads everywhere; A's kernel has no address on the veth (fwd
// answers for 198.18.1.2).
func newGWLBTopo(t *testing.T) *gwlbTopo {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	need(t, "ip")
	p := testnet.Prefix("gw")
	g := &gwlbTopo{t: t, C: p + "c", G: p + "g", A: p + "a", S: p + "s"}
	addNetns(t, g.C, g.G, g.A, g.S)
	sh(t, "ip", "-n", g.G, "link", "add", "vc", "type", "veth", "peer", "name", "vc", "netns", g.C)
	sh(t, "ip", "-n", g.G, "link", "add", "va", "mtu", "9000", "type", "veth", "peer", "name", "va", "mtu", "9000", "netns", g.A)
	sh(t, "ip", "-n", g.G, "link", "add", "vs", "type", "veth", "peer", "name", "vs", "netns", g.S)
	sh(t, "ip", "netns", "exec", g.A, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	for _, a := range []struct{ ns, dev, addr, via string }{
		{g.C, "vc", "198.18.0.2/24", "198.18.0.1"},
		{g.G, "vc", "198.18.0.1/24", ""},
		{g.G, "va", "198.18.1.1/24", ""},
		{g.A, "va", "", ""},
		{g.G, "vs", "198.18.2.1/24", ""},
		{g.S, "vs", "198.18.2.2/24", "198.18.2.1"},
	} {
		if a.addr != "" {
			sh(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		}
		sh(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
		if a.via != "" {
			sh(t, "ip", "-n", a.ns, "route", "add", "default", "via", a.via)
		}
	}
	sh(t, "ip", "netns", "exec", g.G, "sysctl", "-qw", "net.ipv4.ip_forward=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	return g
}

// startSim starts gwlbsim in G, waits for "ready", and routes C's and S's
// traffic into its TUN. stop sends it SIGTERM and returns its counters.
func (g *gwlbTopo) startSim(sim string) (stop func() (map[string]uint64, string)) {
	t := g.t
	cmd := exec.Command("ip", "netns", "exec", g.G, sim, "--tun", "gwlb0", "--local", "198.18.1.1", "--appliance", "198.18.1.2")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill() // by its PID: ip netns exec execs gwlbsim in place
			cmd.Wait()
		}
	})
	lines := bufio.NewScanner(out)
	ready := make(chan bool, 1)
	go func() { ready <- lines.Scan() && lines.Text() == "ready" }()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("gwlbsim did not say ready: %q", lines.Text())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gwlbsim not ready after 60 s")
	}
	sh(t, "ip", "-n", g.G, "rule", "add", "iif", "vc", "lookup", "100")
	sh(t, "ip", "-n", g.G, "rule", "add", "iif", "vs", "lookup", "100")
	sh(t, "ip", "-n", g.G, "route", "add", "default", "dev", "gwlb0", "table", "100")
	return func() (map[string]uint64, string) {
		cmd.Process.Signal(syscall.SIGTERM)
		counters := map[string]uint64{}
		var report strings.Builder
		for lines.Scan() {
			report.WriteString(lines.Text() + "\n")
			if k, v, ok := strings.Cut(lines.Text(), " "); ok {
				counters[k], _ = strconv.ParseUint(v, 10, 64)
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("gwlbsim: %v\n%s", err, report.String())
		}
		done = true
		return counters, report.String()
	}
}

// role is topo.role for these namespaces.
func (g *gwlbTopo) role(ns, role string, args ...string) *bufio.Scanner {
	_, sc := (&topo{t: g.t}).role(ns, role, args...)
	return sc
}

// drops are the frames the links (veths, the TUN), fwd's receive ring and
// the UDP sockets' receive buffers (the sink's, gwlbsim's GENEVE socket)
// lost.
func (g *gwlbTopo) drops(cfg string) int {
	tp := &topo{t: g.t}
	n := tp.udpDrops(g.S) + tp.udpDrops(g.G)
	for _, l := range []struct{ ns, dev string }{{g.C, "vc"}, {g.G, "vc"}, {g.G, "va"}, {g.G, "vs"}, {g.G, "gwlb0"}, {g.A, "va"}, {g.S, "vs"}} {
		n += tp.linkDrops(l.ns, l.dev)
	}
	for _, p := range stats(g.t, cfg).Ports {
		n += int(p.NICDrops)
	}
	return n
}

func (g *gwlbTopo) health(url string) string {
	return line(g.t, g.role(g.G, "health", url), "health")
}

// TestGWLBAppliance: fwd's gwlb port between a GWLB stand-in and its
// client and server; see the file comment.
func TestGWLBAppliance(t *testing.T) {
	g := newGWLBTopo(t)
	gwlbSuite(t, g, bin("fwd"), "afpacket", nil, "va")
}

// TestGWLBApplianceDPDK is the same with fwd's DPDK backend, its port a
// net_af_packet vdev on the veth whose frames hold GWLB's jumbo frames.
func TestGWLBApplianceDPDK(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	fwdDPDK := buildFwdDPDK(t)
	g := newGWLBTopo(t)
	eal := []string{"--no-huge", "-m", "256", "--no-pci", "-l", "1", "--file-prefix=" + g.A,
		"--vdev=net_af_packet0,iface=va,framesz=65408,blocksz=2093056,framecnt=512"}
	gwlbSuite(t, g, fwdDPDK, "dpdk", eal, "net_af_packet0")
}

func gwlbSuite(t *testing.T, g *gwlbTopo, fwdBin, backend string, eal []string, dev string) {
	sim := filepath.Join(t.TempDir(), "gwlbsim")
	if out, err := exec.Command("go", "build", "-o", sim, "github.com/fmcap/fmcap/bench/gwlbsim").CombinedOutput(); err != nil {
		t.Fatalf("build gwlbsim: %v\n%s", err, out)
	}
	ring := makeRing(t, "256MiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := filepath.Join(t.TempDir(), "fmcap.yaml")
	mtu := "" // AF_PACKET: the veth's 9000
	if backend == "dpdk" {
		mtu = "\n      mtu: 9000"
	}
	os.WriteFile(cfg, []byte(configHead(t, ring, backend, eal)+`  metrics: ""
  ports:
    - name: g0
      device: `+dev+mtu+`
      addresses: [198.18.1.2/24]
      gwlb:
        rule: 50
        health_check: {protocol: http, port: 80, path: /healthz}
`), 0o600)
	run(t, fwdBin, "--check-config", cfg)
	fwd := (&topo{t: t}).start(g.A, nil, fwdBin, "--config", cfg)
	waitControl(t, cfg)
	writer := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", "")
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })

	// Health checks as GWLB makes them, from its side.
	if got := g.health("http://198.18.1.2/healthz"); got != "200 healthy" {
		t.Fatalf("health check: %q", got)
	}
	if got := g.health("http://198.18.1.2/other"); got != "404 not found" {
		t.Errorf("health check of another path: %q", got)
	}
	// Frames GWLB would not send: dropped and counted; an unknown option
	// echoed unchanged.
	probe := g.role(g.G, "geneve-probe", "198.18.1.1", "198.18.1.2")
	for i, want := range []string{"echoed", "none", "none"} {
		if got := line(t, probe, "geneve-probe"); got != want {
			t.Errorf("probe %d: %s, want %s", i, got, want)
		}
	}
	s := stats(t, cfg)
	s = waitStats(t, cfg, func(s ctl.Stats) bool {
		return s.Drops["gwlb_option_missing"] == 1 && s.Drops["gwlb_option_wrong_class"] == 1
	})
	if s.Drops["gwlb_option_missing"] != 1 || s.Drops["gwlb_option_wrong_class"] != 1 || s.Drops["gwlb_returned"] < 1 {
		t.Errorf("after the probes: %v", s.Drops)
	}

	// 100 MB of TCP and a UDP stream from C to S through the appliance.
	stopSim := g.startSim(sim)
	const size = 100 << 20
	sink := g.role(g.S, "tcp-sink", "198.18.2.2:5001")
	line(t, sink, "tcp-sink")
	sent := line(t, g.role(g.C, "tcp-source", "198.18.2.2:5001", fmt.Sprint(size)), "tcp-source")
	got := line(t, sink, "tcp-sink")
	if !strings.HasPrefix(got, sent+" ") {
		t.Fatalf("TCP through the appliance: sent %q, received %q", sent, got)
	}
	tcpSum := strings.Fields(got)[1]
	usink := g.role(g.S, "udp-sink", "198.18.2.2:5002", "2000")
	line(t, usink, "udp-sink")
	line(t, g.role(g.C, "udp-source", "198.18.2.2:5002", "2000"), "udp-source")
	var good, bad int
	fmt.Sscanf(line(t, usink, "udp-sink"), "%d %d", &good, &bad)
	dropped := g.drops(cfg) // before gwlbsim stops: its TUN goes with it
	counters, report := stopSim()
	// Every datagram arrives intact, or its loss is counted somewhere on the
	// way: the links' and the TUN's drop counters, fwd's receive ring,
	// gwlbsim's errors (a loaded machine may not run a reader for a while).
	counted := dropped + int(counters["send_errors"]+counters["tun_write_errors"])
	fs := stats(t, cfg) // fwd's transmit refusals count too
	counted += int(fs.Drops["tx_ring_full"] + fs.Drops["tx_rejected"])
	if lost := 2000 - good; bad != 0 || lost < 0 || lost > counted {
		t.Errorf("UDP through the appliance: %d of 2000 datagrams received, %d corrupt; losses counted on the way: %d", good, bad, counted)
	}
	t.Logf("gwlbsim:\n%s", report)
	if counters["mismatches"] != 0 || counters["received"] == 0 {
		t.Errorf("returned datagrams differ from those sent:\n%s", report)
	}
	// fwd publishes its counters every 100 ms: wait for those that cover
	// what gwlbsim received.
	s = waitStats(t, cfg, func(s ctl.Stats) bool { return s.Drops["gwlb_returned"] >= counters["received"] })
	if s.CaptureDrops != 0 {
		t.Fatalf("capture drops %d", s.CaptureDrops)
	}
	if s.Drops["gwlb_returned"] < counters["received"] {
		t.Errorf("fwd returned %d, gwlbsim received %d", s.Drops["gwlb_returned"], counters["received"])
	}
	waitStored(t, ring)

	// The capture holds the inner packets: the TCP stream reassembles to
	// the bytes transferred, each record behind fwd's Ethernet header.
	out := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "tcp port 5001")
	for i, f := range pcapRecords(t, out) {
		if string(f[:12]) != string(make([]byte, 12)) || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			t.Fatalf("record %d: Ethernet header %x", i, f[:14])
		}
	}
	streams := checkSegments(t, "gwlb", out, 5001, 8500)
	st := streams["198.18.0.2->198.18.2.2"]
	if st == nil {
		t.Fatalf("no captured stream from the client: %v", streams)
	}
	data, err := st.bytes(size)
	if err != nil {
		t.Fatal(err)
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(data)); sum != tcpSum {
		t.Fatalf("captured stream has SHA-256 %s, the transfer %s", sum, tcpSum)
	}
	udp := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "udp port 5002")
	if n := len(pcapRecords(t, udp)); n != good {
		t.Errorf("captured %d UDP datagrams, %d went through", n, good)
	}
	checkGWLBOrigins(t, cfg, store, udp)

	// The writer gone: forwarding goes on, captures are dropped and counted,
	// and the HTTP health check says so (503) while they are.
	writer.Process.Kill()
	writer.Wait()
	stopSim = g.startSim(sim)
	// Transfers of 300 MB, each checked, until the ring (256 MiB) is full
	// and a health check has seen the 503 (at most 5).
	saw503 := false
	for round := 0; round < 5 && !saw503; round++ {
		addr := fmt.Sprintf("198.18.2.2:%d", 5003+round)
		sink := g.role(g.S, "tcp-sink", addr)
		line(t, sink, "tcp-sink")
		src := g.role(g.C, "tcp-source", addr, fmt.Sprint(300<<20))
		done := make(chan [2]string, 1)
		go func() {
			var r [2]string
			if src.Scan() {
				r[0] = src.Text()
			}
			if sink.Scan() {
				r[1] = sink.Text()
			}
			done <- r
		}()
		var r [2]string
	poll:
		for {
			select {
			case r = <-done:
				break poll
			default:
			}
			if !saw503 {
				saw503 = g.health("http://198.18.1.2/healthz") == "503 forwarding; captures are dropped"
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r[0] == "" || !strings.HasPrefix(r[1], r[0]+" ") {
			t.Fatalf("TCP with the writer gone: sent %q, received %q", r[0], r[1])
		}
	}
	if !saw503 {
		t.Errorf("the health check never said 503 while captures were dropped (%d dropped)", stats(t, cfg).CaptureDrops)
	}
	if s := stats(t, cfg); s.CaptureDrops == 0 {
		t.Errorf("no capture drops counted with the writer gone")
	}
	stopSim()

	// fwd stopped: nothing answers the health check.
	fwd.Process.Signal(syscall.SIGTERM)
	fwd.Wait()
	if got := g.health("http://198.18.1.2/healthz"); got != "down" {
		t.Errorf("health check with fwd stopped: %q", got)
	}
}

// checkGWLBOrigins: every captured packet keeps the GWLB identity gwlbsim
// gave it: the pcapng interface is named by the endpoint id, the comment
// says endpoint, attachment and a flow cookie that is one per connection
// (gwlbsim's is the same both ways, as GWLB's); --gwlb-endpoint selects
// exactly the packets of that endpoint (udp: the slice without it).
func checkGWLBOrigins(t *testing.T, cfg, store string, udp []byte) {
	t.Helper()
	need(t, "tshark")
	ng := filepath.Join(t.TempDir(), "gwlb.pcapng")
	// The UDP stream and the TCP connection's SYNs (not 100 MB of it).
	run(t, bin("fmslice"), "--config", cfg, "--store", store, "--from", "0", "--to", "now", "-q", "--format", "pcapng", "-w", ng,
		"udp port 5002 or (tcp port 5001 and tcp[tcpflags] & tcp-syn != 0)")
	fields := run(t, "tshark", "-r", ng, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.packet_flags_direction", "-e", "frame.comment", "-e", "ip.proto")
	const prefix = "port=g0 dir=in rule=50 gwlb endpoint=0123456789abcdef attachment=fedcba9876543210 cookie="
	cookies := map[string]map[string]int{} // protocol → cookie → packets
	lines := strings.Split(strings.TrimRight(string(fields), "\n"), "\n")
	for i, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 || f[0] != "gwlb:0123456789abcdef" || f[1] != "0x00000001" || !strings.HasPrefix(f[2], prefix) {
			t.Fatalf("packet %d: tshark says %q: want interface gwlb:0123456789abcdef, inbound, comment %q…", i, l, prefix)
		}
		if cookies[f[3]] == nil {
			cookies[f[3]] = map[string]int{}
		}
		cookies[f[3]][strings.TrimPrefix(f[2], prefix)]++
	}
	if len(cookies["17"]) != 1 || len(cookies["6"]) != 1 || fmt.Sprint(cookies["17"]) == fmt.Sprint(cookies["6"]) {
		t.Fatalf("flow cookies by protocol: %v, want one per connection, the two different", cookies)
	}
	for c, n := range cookies["6"] {
		if n != 2 || c == "00000000" {
			t.Errorf("TCP SYNs: %d with cookie %s, want the SYN and the SYN-ACK, nonzero", n, c)
		}
	}
	sel := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "--gwlb-endpoint", "0123456789abcdef", "udp port 5002")
	if fmt.Sprint(pcapRecords(t, sel)) != fmt.Sprint(pcapRecords(t, udp)) {
		t.Errorf("--gwlb-endpoint 0123456789abcdef: %d records, want the %d of the endpoint", len(pcapRecords(t, sel)), len(pcapRecords(t, udp)))
	}
	if none := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "--gwlb-endpoint", "1", "udp port 5002"); len(none) != 24 {
		t.Errorf("--gwlb-endpoint 1: %d bytes, want the pcap header alone", len(none))
	}
}
