package e2e

// The forwarder end to end, between two real Linux stacks in network
// namespaces:
//
//	ns A: a0 198.18.1.2 ── f0 [fwd: X 198.18.1.1, X2 .3, X3 .4] ns F
//	ns F: f1 [fwd: Y 198.18.2.1, Y2 .3] ── b0 198.18.2.2 ns B
//
// rule 1: A → X forwarded as Y → B (capture both), rule 2: A → X2 as
// Y2 → B (capture inline); X3 has no rule and answers ping itself. fwd's
// captures go through the ring and the writer into a store, and fmslice
// reads them back for comparison with tcpdump captures taken on the veths
// next to fwd: the ingress copies against tcpdump -Q in on f0/f1 (what fwd
// received), the egress copies against tcpdump -Q in on a0/b0 (what fwd
// sent: a veth pair delivers frames unchanged).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/testnet"
)

var (
	addrA  = net.IPv4(198, 18, 1, 2).To4()
	addrX  = net.IPv4(198, 18, 1, 1).To4()
	addrX2 = net.IPv4(198, 18, 1, 3).To4()
	addrY  = net.IPv4(198, 18, 2, 1).To4()
	addrY2 = net.IPv4(198, 18, 2, 3).To4()
	addrB  = net.IPv4(198, 18, 2, 2).To4()
	// IPv6: the benchmarking range 2001:2::/48, as in testdata/.
	addrA6 = net.ParseIP("2001:2:0:1::2")
	addrX6 = net.ParseIP("2001:2:0:1::1")
	addrY6 = net.ParseIP("2001:2:0:2::1")
	addrB6 = net.ParseIP("2001:2:0:2::2")
)

type topo struct {
	t              *testing.T
	nsA, nsF, nsB  string
	a0, f0, f1, b0 string
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addNetns adds the namespaces, with lo up, deleted when the test ends.
func addNetns(t *testing.T, names ...string) {
	t.Helper()
	for _, ns := range names {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
}

// newTopo builds the three namespaces; they (and the veths in them) are
// deleted when the test ends. The end hosts have checksum offload off and
// fwd's ports GRO off, so that every frame on the veths is an ordinary one
// and the suites built on it can compare fwd's captures byte for byte
// with tcpdump's on the same veths (which, with offloads on, would show
// super-frames with partial checksums where the wire has segments).
// newTopoWith with offloads gives hosts with the kernel's defaults
// (offload_test.go).
func newTopo(t *testing.T) *topo { return newTopoWith(t, topoOpts{}) }

// topoOpts: offloads leaves every device at the kernel's defaults (TSO,
// GSO, checksum offload on; veth GRO off), and fwdGRO turns GRO on on
// fwd's ports.
type topoOpts struct {
	offloads, fwdGRO bool
}

func newTopoWith(t *testing.T, o topoOpts) *topo {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	need(t, "ip", "ethtool", "tcpdump", "ping")
	p := testnet.Prefix("fm") // unique among live processes: two test runs at once
	tp := &topo{t: t, nsA: p + "A", nsF: p + "F", nsB: p + "B", a0: p + "a0", f0: p + "f0", f1: p + "f1", b0: p + "b0"}
	addNetns(t, tp.nsA, tp.nsF, tp.nsB)
	sh(t, "ip", "link", "add", tp.a0, "netns", tp.nsA, "type", "veth", "peer", "name", tp.f0, "netns", tp.nsF)
	sh(t, "ip", "link", "add", tp.f1, "netns", tp.nsF, "type", "veth", "peer", "name", tp.b0, "netns", tp.nsB)
	// The kernel in F must stay out of the way: no addresses, no IPv6.
	sh(t, "ip", "netns", "exec", tp.nsF, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	for _, e := range []struct{ ns, dev, addr string }{{tp.nsA, tp.a0, "198.18.1.2/24"}, {tp.nsB, tp.b0, "198.18.2.2/24"}, {tp.nsF, tp.f0, ""}, {tp.nsF, tp.f1, ""}} {
		if e.addr != "" {
			sh(t, "ip", "-n", e.ns, "addr", "add", e.addr, "dev", e.dev)
			a6 := map[string]string{tp.a0: "2001:2:0:1::2/64", tp.b0: "2001:2:0:2::2/64"}[e.dev]
			sh(t, "ip", "-n", e.ns, "-6", "addr", "add", a6, "dev", e.dev, "nodad")
			if !o.offloads {
				// End hosts: checksums filled in by the stack, not left to an offload.
				sh(t, "ip", "netns", "exec", e.ns, "ethtool", "-K", e.dev, "tx", "off")
			}
		} else if o.fwdGRO {
			sh(t, "ip", "netns", "exec", e.ns, "ethtool", "-K", e.dev, "gro", "on")
		} else if !o.offloads {
			sh(t, "ip", "netns", "exec", e.ns, "ethtool", "-K", e.dev, "gro", "off")
		}
		sh(t, "ip", "-n", e.ns, "link", "set", e.dev, "up")
	}
	return tp
}

// start runs a command in a namespace; it is killed when the test ends.
func (tp *topo) start(ns string, stdout io.Writer, args ...string) *exec.Cmd {
	tp.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout = stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	tp.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if tp.t.Failed() && stderr.Len() > 0 {
			tp.t.Logf("%s stderr:\n%s", filepath.Base(args[0]), stderr.String())
		}
	})
	return cmd
}

// role starts a helper role of this test binary in a namespace and returns
// a reader of its stdout lines.
func (tp *topo) role(ns, role string, args ...string) (*exec.Cmd, *bufio.Scanner) {
	self, _ := os.Executable()
	pr, pw := io.Pipe()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "env", roleEnv + "=" + role, self}, args...)...)
	cmd.Stdout = pw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tp.t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.CloseWithError(fmt.Errorf("%s: %s", role, stderr.String())) }()
	tp.t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, bufio.NewScanner(pr)
}

func line(t *testing.T, sc *bufio.Scanner, what string) string {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("%s: no output (%v)", what, sc.Err())
	}
	return sc.Text()
}

// tcpTransfer sends size bytes from A to dst:port, received by B on port;
// it checks the bytes arrived intact and from the expected source.
func (tp *topo) tcpTransfer(dst net.IP, port int, size int64, wantSrc net.IP, during func()) {
	t := tp.t
	t.Helper()
	b := addrB
	if dst.To4() == nil {
		b = addrB6
	}
	_, sink := tp.role(tp.nsB, "tcp-sink", net.JoinHostPort(b.String(), fmt.Sprint(port)))
	line(t, sink, "tcp-sink")
	_, src := tp.role(tp.nsA, "tcp-source", net.JoinHostPort(dst.String(), fmt.Sprint(port)), fmt.Sprint(size))
	if during != nil {
		during()
	}
	sent := line(t, src, "tcp-source")
	got := line(t, sink, "tcp-sink")
	if !strings.HasPrefix(got, sent+" ") {
		t.Fatalf("TCP transfer to %s:%d: sent %q, received %q", dst, port, sent, got)
	}
	if from := strings.Fields(got)[2]; from != wantSrc.String() {
		t.Fatalf("B saw the connection from %s, want %s", from, wantSrc)
	}
}

// tcpdump captures what arrives on dev in ns into a file until stopped.
func (tp *topo) tcpdump(ns, dev string) (file string, stop func() int) {
	t := tp.t
	file = filepath.Join(t.TempDir(), dev+".pcap")
	pr, pw := io.Pipe()
	// -U writes each packet as it comes, so the file's growth shows how
	// far tcpdump has got (stop waits for it to settle).
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-Q", "in", "-s", "0", "-B", "65536",
		"--immediate-mode", "-U", "--time-stamp-precision=nano", "-w", file, "ip or ip6")
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(pr)
	for sc.Scan() && !strings.Contains(sc.Text(), "listening on") {
	}
	var tail bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&tail, pr); close(copied) }()
	return file, func() int {
		// On SIGINT tcpdump exits without reading what its buffer still
		// holds: on a loaded machine that was part of the reference. Wait
		// until the file has not grown for a while (at most 30 s).
		last, still := int64(-1), 0
		for i := 0; i < 300 && still < 5; i++ {
			time.Sleep(100 * time.Millisecond)
			if st, err := os.Stat(file); err == nil && st.Size() == last {
				still++
			} else if err == nil {
				last, still = st.Size(), 0
			}
		}
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		pw.Close()
		<-copied
		// "N packets dropped by kernel": what the reference lacks.
		dropped := 0
		for _, l := range strings.Split(tail.String(), "\n") {
			if f := strings.Fields(l); len(f) >= 5 && strings.Join(f[1:], " ") == "packets dropped by kernel" {
				dropped, _ = strconv.Atoi(f[0])
			}
		}
		return dropped
	}
}

// linkDrops is what the kernel counted as dropped on a device, both ways.
func (tp *topo) linkDrops(ns, dev string) int {
	n := 0
	for _, f := range []string{"rx_dropped", "tx_dropped"} {
		b, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/statistics/"+f).Output()
		if err != nil {
			tp.t.Fatal(err)
		}
		v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		n += v
	}
	return n
}

// udpDrops is the UDP datagrams namespace ns's kernel dropped on receive
// (Udp InErrors in /proc/net/snmp: a socket's receive buffer full, which
// it also counts as RcvbufErrors, or a bad checksum): on a loaded machine
// a reader may not run for a while.
func (tp *topo) udpDrops(ns string) int {
	b, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		tp.t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "InErrors" && i < len(f) {
				v, _ := strconv.Atoi(f[i])
				return v
			}
		}
	}
	tp.t.Fatalf("no Udp InErrors in %s's /proc/net/snmp", ns)
	return 0
}

// frames reads a pcap and returns the IP frames from src to dst (IPv4 or
// IPv6; neighbor discovery, which fwd answers and never forwards, left out).
func frames(t *testing.T, pcap []byte, src, dst net.IP) [][]byte {
	t.Helper()
	out, _ := framesAt(t, pcap, src, dst)
	return out
}

// framesAt is frames with each frame's capture time.
func framesAt(t *testing.T, pcap []byte, src, dst net.IP) ([][]byte, []time.Time) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(pcap))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var at []time.Time
	for {
		b, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(b) >= 34 && b[12] == 8 && b[13] == 0 && net.IP(b[26:30]).Equal(src) && net.IP(b[30:34]).Equal(dst) {
			out, at = append(out, b), append(at, ci.Timestamp)
		}
		if len(b) >= 54 && b[12] == 0x86 && b[13] == 0xdd && net.IP(b[22:38]).Equal(src) && net.IP(b[38:54]).Equal(dst) {
			if b[20] == 58 && len(b) > 54 && b[54] >= 133 && b[54] <= 137 {
				continue
			}
			out, at = append(out, b), append(at, ci.Timestamp)
		}
	}
	return out, at
}

// sameFrames wants the same frames, byte for byte, each as many times
// (but for the losses counted on each side), in the same order. Order is
// compared loosely: two frames that reach a veth from different CPUs at the
// same moment can be queued to two packet sockets (fwd's and tcpdump's) in
// different orders, and on a loaded machine (a descheduled virtual CPU)
// that moment can last long enough for a burst of frames from the other
// CPU to pass. So a frame may sit up to 8 places from where the reference
// has it, or further only among frames the reference saw within
// reorderWindow of it (wantAt: the reference's times; nil: places only).
// What this still catches is fwd holding a frame back, or reordering its
// own queue.
func sameFrames(t *testing.T, what string, got, want [][]byte, wantAt []time.Time, refLost, gotLost int) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the reference capture is empty", what)
	}
	// Match the k-th copy of each frame in one list with the k-th in the
	// other; unmatched copies are the losses.
	type inst struct {
		s string
		k int
	}
	index := func(l [][]byte) map[inst]int {
		seen := map[string]int{}
		m := make(map[inst]int, len(l))
		for i, f := range l {
			m[inst{string(f), seen[string(f)]}] = i
			seen[string(f)]++
		}
		return m
	}
	gi, wi := index(got), index(want)
	var gotOnly, wantOnly []int
	for in, i := range gi {
		if _, ok := wi[in]; !ok {
			gotOnly = append(gotOnly, i)
		}
	}
	for in, i := range wi {
		if _, ok := gi[in]; !ok {
			wantOnly = append(wantOnly, i)
		}
	}
	if len(gotOnly) > refLost {
		sort.Ints(gotOnly)
		t.Fatalf("%s: %d captured frames are not in the reference (%d losses counted there); first: frame %d %x", what, len(gotOnly), refLost, gotOnly[0], got[gotOnly[0]])
	}
	if len(wantOnly) > gotLost {
		sort.Ints(wantOnly)
		t.Fatalf("%s: %d reference frames were not captured (%d losses counted by fwd); first: frame %d %x", what, len(wantOnly), gotLost, wantOnly[0], want[wantOnly[0]])
	}
	// Order: rank the matched frames on each side; a frame's ranks differ
	// by a few places at most.
	type pair struct{ g, w int }
	var matched []pair
	for in, i := range gi {
		if j, ok := wi[in]; ok {
			matched = append(matched, pair{i, j})
		}
	}
	sort.Slice(matched, func(a, b int) bool { return matched[a].g < matched[b].g })
	wRank := make([]int, len(matched))
	for i := range wRank {
		wRank[i] = i
	}
	sort.Slice(wRank, func(a, b int) bool { return matched[wRank[a]].w < matched[wRank[b]].w })
	moved := 0
	far := 0
	for r, idx := range wRank {
		d := r - idx
		if d == 0 {
			continue
		}
		moved++
		if d >= -8 && d <= 8 {
			continue
		}
		// The frame the reference has at the place this one was captured.
		gap := time.Duration(-1)
		if wantAt != nil {
			gap = wantAt[matched[idx].w].Sub(wantAt[matched[wRank[idx]].w]).Abs()
		}
		if gap < 0 || gap > reorderWindow {
			t.Fatalf("%s: captured frame %d is frame %d of the reference, %d places apart (%v apart in the reference)", what, matched[idx].g, matched[idx].w, d, gap)
		}
		far++
	}
	t.Logf("%s: %d frames byte-identical to tcpdump's (%d a few places apart, %d of them more than 8 but within %v; %d only captured, %d only in the reference, each loss counted)", what, len(matched), moved, far, reorderWindow, len(gotOnly), len(wantOnly))
}

// reorderWindow bounds how far apart in time two frames the two packet
// sockets saw in different orders can be: far more than a descheduled CPU
// lasts, far less than a frame fwd held back would be late.
const reorderWindow = 500 * time.Millisecond

// configHead is how every test configuration starts: the ring, and fwd's
// backend, control socket (in a fresh directory) and EAL arguments; ports
// and rules follow.
func configHead(t *testing.T, ring, backend string, eal []string) string {
	return fmt.Sprintf(`# e2e test configuration
ring:
  path: %s
fwd:
  backend: %s
  control: %s
  dpdk:
    eal: [%s]
`, ring, backend, filepath.Join(t.TempDir(), "fwd.sock"), quoteAll(eal))
}

// writeConfig writes a test configuration to a fresh directory.
func writeConfig(t *testing.T, y string) string {
	p := filepath.Join(t.TempDir(), "fmcap.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fwdConfig(t *testing.T, tp *topo, ring, backend string, eal []string, devs [2]string) string {
	return writeConfig(t, configHead(t, ring, backend, eal)+fmt.Sprintf(`  ports:
    - name: p0
      device: %s
      addresses: [198.18.1.1/24, 198.18.1.3/24, 198.18.1.4/24, "2001:2:0:1::1/64"]
    - name: p1
      device: %s
      addresses: [198.18.2.1/24, 198.18.2.3/24, "2001:2:0:2::1/64"]
  rules:
    - id: 1
      in: p0
      local: 198.18.1.1
      peer: 198.18.1.2
      out: p1
      out_local: 198.18.2.1
      target: 198.18.2.2
      capture: both
    - id: 2
      in: p0
      local: 198.18.1.3
      peer: 198.18.1.2
      out: p1
      out_local: 198.18.2.3
      target: 198.18.2.2
      capture: inline
    - id: 3
      in: p0
      local: "2001:2:0:1::1"
      peer: "2001:2:0:1::2"
      out: p1
      out_local: "2001:2:0:2::1"
      target: "2001:2:0:2::2"
      capture: both
`, devs[0], devs[1]))
}

// freeAddr is a localhost address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func fmctl(t *testing.T, cfg string, args ...string) []byte {
	t.Helper()
	return run(t, bin("fmctl"), append([]string{"--socket", socketOf(t, cfg)}, args...)...)
}

func socketOf(t *testing.T, cfg string) string {
	b, _ := os.ReadFile(cfg)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "control:" {
			return f[1]
		}
	}
	t.Fatal("no control socket in config")
	return ""
}

func stats(t *testing.T, cfg string) ctl.Stats {
	t.Helper()
	var s ctl.Stats
	if err := json.Unmarshal(fmctl(t, cfg, "stats", "--json"), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitStats polls until fwd's published counters satisfy ok (they are
// published every 100 ms).
func waitStats(t *testing.T, cfg string, ok func(ctl.Stats) bool) ctl.Stats {
	t.Helper()
	var s ctl.Stats
	for i := 0; i < 150; i++ { // 15 s and more: a loaded machine publishes late
		if s = stats(t, cfg); ok(s) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

func TestForwarderAFPacket(t *testing.T) {
	tp := newTopo(t)
	forwarderSuite(t, tp, bin("fwd"), "afpacket", nil, [2]string{tp.f0, tp.f1})
}

// TestForwarderDPDK is the same suite with fwd built with -tags dpdk, on
// net_af_packet virtual devices over the same veths.
func TestForwarderDPDK(t *testing.T) {
	tp := newTopo(t)
	fwdDPDK := buildFwdDPDK(t)
	eal := []string{"--no-huge", "-m", "256", "--no-pci", "-l", "1", "--file-prefix=" + tp.nsF,
		"--vdev=net_af_packet0,iface=" + tp.f0 + ",framecnt=4096", "--vdev=net_af_packet1,iface=" + tp.f1 + ",framecnt=4096"}
	forwarderSuite(t, tp, fwdDPDK, "dpdk", eal, [2]string{"net_af_packet0", "net_af_packet1"})
}

// forwarderSuite is the same test for both backends.
func forwarderSuite(t *testing.T, tp *topo, fwdBin, backend string, eal []string, devs [2]string) {
	ring := makeRing(t, "256MiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := fwdConfig(t, tp, ring, backend, eal, devs)
	run(t, fwdBin, "--check-config", cfg)
	fwd := tp.start(tp.nsF, nil, fwdBin, "--config", cfg, "--log-level", "debug")
	waitControl(t, cfg)
	metricsAddr := freeAddr(t)
	writer := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", metricsAddr)
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })

	// References: what fwd receives (f0, f1) and what it sends (b0, a0).
	refIn0, stop1 := tp.tcpdump(tp.nsF, tp.f0)
	refIn1, stop2 := tp.tcpdump(tp.nsF, tp.f1)
	refOutB, stop3 := tp.tcpdump(tp.nsB, tp.b0)
	refOutA, stop4 := tp.tcpdump(tp.nsA, tp.a0)

	// ping: X3 answers itself; X forwards to B.
	for _, dst := range []string{"198.18.1.4", "198.18.1.1"} {
		sh(t, "ip", "netns", "exec", tp.nsA, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst)
	}
	// IPv6: ping through rule 3, and TCP.
	sh(t, "ip", "netns", "exec", tp.nsA, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "2001:2:0:1::1")
	tp.tcpTransfer(addrX6, 5006, 2<<20, addrY6, nil)
	_, ref6 := tp.role(tp.nsA, "udp-refused", "[2001:2:0:1::1]:9")
	if got := line(t, ref6, "udp-refused IPv6"); got != "refused" {
		t.Fatalf("udp-refused IPv6: %s", got)
	}
	// ICMP errors: B's port unreachable reaches A's socket, quoting A's packet.
	_, ref := tp.role(tp.nsA, "udp-refused", "198.18.1.1:9")
	if got := line(t, ref, "udp-refused"); got != "refused" {
		t.Fatalf("udp-refused: %s", got)
	}
	// TCP (rule 1, both) and TCP through rule 2 (inline).
	tp.tcpTransfer(addrX, 5001, 4<<20, addrY, nil)
	tp.tcpTransfer(addrX2, 5003, 1<<20, addrY2, nil)
	// A UDP stream: every datagram delivered intact or its loss counted
	// (by fwd with a reason, or by the kernel on the links: a loaded
	// machine may not run fwd for a while), and nothing corrupt.
	before := tp.lossCounters(cfg)
	_, usink := tp.role(tp.nsB, "udp-sink", "198.18.2.2:5002", "2000")
	line(t, usink, "udp-sink")
	_, usrc := tp.role(tp.nsA, "udp-source", "198.18.1.1:5002", "2000")
	line(t, usrc, "udp-source")
	var good, bad int
	if got := line(t, usink, "udp-sink"); func() bool { _, err := fmt.Sscanf(got, "%d %d", &good, &bad); return err != nil }() {
		t.Fatalf("udp-sink: %q", got)
	}
	if bad != 0 || good > 2000 {
		t.Fatalf("UDP: %d datagrams received, %d corrupt", good, bad)
	}
	if lost := 2000 - good; lost > 0 {
		counted := waitLoss(tp, cfg, before, lost)
		if counted < lost {
			t.Fatalf("UDP: %d of 2000 datagrams lost, only %d losses counted", lost, counted)
		}
		t.Logf("UDP: %d of 2000 datagrams lost, each counted (%d losses counted in all)", lost, counted)
	}
	s := waitStats(t, cfg, func(s ctl.Stats) bool { return s.Captured > 0 })
	time.Sleep(300 * time.Millisecond)
	// What each reference may lack: tcpdump's own drops, and for the
	// references on the end hosts the drops on the links from fwd. What
	// fwd's capture may lack: its receive rings' drops.
	lostIn0, lostIn1 := stop1(), stop2()
	lostOutB := stop3() + tp.linkDrops(tp.nsF, tp.f1) + tp.linkDrops(tp.nsB, tp.b0)
	lostOutA := stop4() + tp.linkDrops(tp.nsF, tp.f0) + tp.linkDrops(tp.nsA, tp.a0)
	mid := time.Now()
	if s.CaptureDrops != 0 {
		t.Fatalf("capture drops %d", s.CaptureDrops)
	}
	nicLost := [2]int{int(s.Ports[0].NICDrops), int(s.Ports[1].NICDrops)}
	t.Logf("losses counted: tcpdump on %s %d, on %s %d; on the way to B %d, to A %d; fwd's receive rings %v",
		tp.f0, lostIn0, tp.f1, lostIn1, lostOutB, lostOutA, nicLost)

	// 100 MB with capture-mode changes in the middle.
	tp.tcpTransfer(addrX, 5004, 100<<20, addrY, func() {
		for _, m := range []string{"inline", "egress", "none", "ingress", "both"} {
			time.Sleep(150 * time.Millisecond)
			fmctl(t, cfg, "rules", "set-mode", "1", m)
		}
	})
	time.Sleep(300 * time.Millisecond)
	final := stats(t, cfg)
	// fmctl stats --config adds the ring's consumers to fwd's figures.
	human := string(run(t, bin("fmctl"), "--config", cfg, "stats"))
	if !strings.Contains(human, "forwarded ") || !strings.Contains(human, "RING "+ring) || !regexp.MustCompile(`\nwriter\s+lossless`).MatchString(human) {
		t.Errorf("fmctl --config stats:\n%s", human)
	}
	// The same figures on fwd's Prometheus endpoint (in its namespace), and
	// the writer's.
	_, body := tp.role(tp.nsF, "http-get", "http://127.0.0.1:9561/metrics")
	var prom []string
	for body.Scan() {
		prom = append(prom, body.Text())
	}
	wantLines := []string{
		fmt.Sprintf("fmcap_fwd_forwarded_packets_total %d", final.Forwarded),
		fmt.Sprintf("fmcap_fwd_captured_packets_total %d", final.Captured),
		`fmcap_fwd_drops_total{stage="ring_full"} 0`,
		`fmcap_fwd_rule_packets_total{rule="1",dir="a_to_b"}`,
		`fmcap_ring_consumer_lag_bytes{consumer="writer"}`,
		`fmcap_fwd_port_rx_packets_total{port="p0"}`,
	}
	for _, w := range wantLines {
		found := false
		for _, l := range prom {
			found = found || strings.HasPrefix(l, w)
		}
		if !found {
			t.Errorf("fwd metrics lack %q:\n%s", w, strings.Join(prom, "\n"))
		}
	}
	if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err != nil {
		t.Errorf("writer metrics: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "fmcap_writer_packets_total ") || !strings.Contains(string(b), "fmcap_writer_compression_ratio ") ||
			!strings.Contains(string(b), "fmcap_slice_queries_total ") {
			t.Errorf("writer metrics:\n%s", b)
		}
	}
	if final.CaptureDrops != 0 {
		t.Errorf("capture drops %d", final.CaptureDrops)
	}
	// Stop fwd, then the writer (which stores everything published).
	fwd.Process.Signal(syscall.SIGTERM)
	if err := fwd.Wait(); err != nil {
		t.Fatalf("fwd exit: %v", err)
	}
	writer.Process.Signal(syscall.SIGTERM)
	if err := writer.Wait(); err != nil {
		t.Fatalf("writer exit: %v", err)
	}

	// Phase 1: byte-identical against the references, per direction.
	got := run(t, bin("fmslice"), "--store", store, "--to", unixArg(mid.UnixNano()), "-q")
	read := func(f string) []byte {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		what          string
		src, dst      net.IP
		ref           string
		refLost, lost int
	}{
		{"ingress A→X", addrA, addrX, refIn0, lostIn0, nicLost[0]},
		{"ingress B→Y", addrB, addrY, refIn1, lostIn1, nicLost[1]},
		{"egress Y→B", addrY, addrB, refOutB, lostOutB, 0},
		{"egress X→A", addrX, addrA, refOutA, lostOutA, 0},
		{"IPv6 ingress A→X", addrA6, addrX6, refIn0, lostIn0, nicLost[0]},
		{"IPv6 ingress B→Y", addrB6, addrY6, refIn1, lostIn1, nicLost[1]},
		{"IPv6 egress Y→B", addrY6, addrB6, refOutB, lostOutB, 0},
		{"IPv6 egress X→A", addrX6, addrA6, refOutA, lostOutA, 0},
	} {
		want, at := framesAt(t, read(c.ref), c.src, c.dst)
		sameFrames(t, c.what, frames(t, got, c.src, c.dst), want, at, c.refLost, c.lost)
	}
	// Rule 2 is inline: its packets show A ↔ B, and as many as were sent.
	ab, ba := frames(t, got, addrA, addrB), frames(t, got, addrB, addrA)
	wantAB, wantABAt := framesAt(t, read(refOutB), addrY2, addrB)
	wantBA := frames(t, read(refOutA), addrX2, addrA)
	if len(ab) < len(wantAB) || len(ab) > len(wantAB)+lostOutB || len(ba) < len(wantBA) || len(ba) > len(wantBA)+lostOutA || len(ab) == 0 {
		t.Fatalf("inline: %d A→B and %d B→A captured, %d and %d seen sent (losses counted on the way: %d, %d)", len(ab), len(ba), len(wantAB), len(wantBA), lostOutB, lostOutA)
	}
	// Each frame as sent, but for the source address and the sums over it
	// (bytes 24..29: IP checksum and source; 50..51: TCP checksum): the
	// captured ones are those sent, plus at most the losses counted on the
	// way to B.
	norm := func(l [][]byte) [][]byte {
		out := make([][]byte, len(l))
		for i, f := range l {
			g := append([]byte(nil), f...)
			if len(g) >= 52 {
				clear(g[24:30])
				clear(g[50:52])
			}
			out[i] = g
		}
		return out
	}
	sameFrames(t, "inline A→B (as sent to B, but for the source)", norm(ab), norm(wantAB), wantABAt, lostOutB, 0)
	for _, in := range [][][]byte{frames(t, got, addrX2, addrA), frames(t, got, addrY2, addrB)} {
		if len(in) != 0 {
			t.Fatalf("inline rule captured %d frames with fwd's own addresses", len(in))
		}
	}

	// Everything: the store holds exactly what fwd counted as captured.
	all := run(t, bin("fmslice"), "--store", store, "-q")
	n := 0
	r, _ := pcapgo.NewReader(bytes.NewReader(all))
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if uint64(n) != final.Captured {
		t.Fatalf("store holds %d packets, fwd captured %d", n, final.Captured)
	}
	// The mode switches showed up: inline A→B frames of rule 1 after mid.
	late := run(t, bin("fmslice"), "--store", store, "--from", unixArg(mid.UnixNano()), "-q", "src host 198.18.1.2 and dst host 198.18.2.2 and tcp port 5004")
	if len(frames(t, late, addrA, addrB)) == 0 {
		t.Fatal("no inline capture after set-mode inline")
	}
	t.Logf("%s: forwarded %d, captured %d, drops %v", backend, final.Forwarded, final.Captured, final.Drops)
}

// lossCounters sums every counter that can account for a lost datagram:
// fwd's (frames its receive rings lost, frames not forwarded for a reason
// other than an answer or a queue) and the kernel's on the four veths
// (drops and errors both ways) and in B (UDP receive buffer errors).
func (tp *topo) lossCounters(cfg string) int {
	t := tp.t
	t.Helper()
	n := 0
	s := stats(t, cfg)
	for _, p := range s.Ports {
		n += int(p.NICDrops)
	}
	for k, v := range s.Drops {
		switch k {
		case "arp_answered", "echo_answered", "ndp_answered", "queued_for_arp", "arp_not_for_us", "ndp_not_for_us":
		default:
			n += int(v)
		}
	}
	for _, e := range [][2]string{{tp.nsA, tp.a0}, {tp.nsF, tp.f0}, {tp.nsF, tp.f1}, {tp.nsB, tp.b0}} {
		for _, f := range []string{"rx_dropped", "tx_dropped", "rx_errors", "tx_errors"} {
			b, err := exec.Command("ip", "netns", "exec", e[0], "cat", "/sys/class/net/"+e[1]+"/statistics/"+f).Output()
			if err != nil {
				t.Fatal(err)
			}
			v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			n += v
		}
	}
	return n + tp.udpDrops(tp.nsB)
}

// waitLoss waits (fwd publishes its counters every 100 ms) until the loss
// counters have grown by want since before, and returns how much they grew.
func waitLoss(tp *topo, cfg string, before, want int) int {
	var got int
	for i := 0; i < 30; i++ {
		if got = tp.lossCounters(cfg) - before; got >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return got
}
