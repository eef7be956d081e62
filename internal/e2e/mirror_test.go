package e2e

// fwd as a VPC Traffic Mirroring target, in namespaces: the mirror source M
// has the kernel's VXLAN devices (VNIs 123 and 456, and VNI 999 that fwd is
// not configured for) towards fwd's mirror port in T; a real capture written
// into the VXLAN device comes out of the store byte for byte, with its
// session's VNI: pcapng output names the interface by it and says the outer
// source, and --vni selects what tshark selects on that pcapng.
//
//	M (198.18.3.1; vx123, vx999 over vm) ──veth (MTU 9000)── T (fwd, port m0 at 198.18.3.2)

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/testnet"
)

// inject writes every frame of a capture to dev, as a mirror source's
// kernel would hand it to its VXLAN device.
func inject(file, dev string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrLinklayer{Ifindex: ifi.Index}
	// One CPU for every send: frames sent from two CPUs go through two
	// per-CPU backlogs on their way to the veth and can arrive in another
	// order than sent (seen once on a loaded machine).
	runtime.LockOSThread()
	var one unix.CPUSet
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	n := 0
	for {
		f, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if err := syscall.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("frame %d: %v", n, err)
		}
		n++
	}
	fmt.Println(n)
	return nil
}

// vxlanCut sends what a mirror session with a packet length of 100 sends
// for a longer packet: the first 100 bytes of the frame, headers unchanged.
func vxlanCut(remote, vni, ipLen string) error {
	v, _ := strconv.Atoi(vni)
	n, _ := strconv.Atoi(ipLen)
	frame := make([]byte, 14+n)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00})
	ip := frame[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(n))
	copy(ip[12:], []byte{198, 18, 0, 2, 198, 18, 2, 2})
	for i := 28; i < n; i++ {
		ip[i] = byte(i)
	}
	hdr := []byte{0x08, 0, 0, 0, byte(v >> 16), byte(v >> 8), byte(v), 0}
	c, err := net.Dial("udp4", net.JoinHostPort(remote, "4789"))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(append(hdr, frame[:100]...)); err != nil {
		return err
	}
	fmt.Println("sent")
	return nil
}

func TestMirrorTarget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	need(t, "ip", "tcpdump")
	p := testnet.Prefix("mi")
	M, T := p+"m", p+"t"
	addNetns(t, M, T)
	sh(t, "ip", "-n", M, "link", "add", "vm", "mtu", "9000", "type", "veth", "peer", "name", "vt", "mtu", "9000", "netns", T)
	// No IPv6 on either side: the VXLAN devices would mirror their own
	// router solicitations and MLD reports.
	for _, ns := range []string{M, T} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	sh(t, "ip", "-n", M, "addr", "add", "198.18.3.1/24", "dev", "vm")
	sh(t, "ip", "-n", M, "link", "set", "vm", "up")
	// fwd's MAC pinned on the source: with ARP to resolve first, the kernel
	// queues the first frames and sends them when the answer comes, from the
	// CPU that took the answer, while later ones go from the injector's:
	// the order on the link is lost (seen once on a loaded machine).
	mac, err := exec.Command("ip", "netns", "exec", T, "cat", "/sys/class/net/vt/address").Output()
	if err != nil {
		t.Fatal(err)
	}
	sh(t, "ip", "-n", M, "neigh", "replace", "198.18.3.2", "lladdr", strings.TrimSpace(string(mac)), "dev", "vm", "nud", "permanent")
	sh(t, "ip", "-n", T, "link", "set", "vt", "up")
	for _, vni := range []string{"123", "456", "999"} {
		sh(t, "ip", "-n", M, "link", "add", "vx"+vni, "mtu", "8900", "type", "vxlan", "id", vni, "remote", "198.18.3.2",
			"local", "198.18.3.1", "dstport", "4789", "dev", "vm")
		sh(t, "ip", "-n", M, "link", "set", "vx"+vni, "up")
	}

	ring := makeRing(t, "64MiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := filepath.Join(t.TempDir(), "fmcap.yaml")
	os.WriteFile(cfg, []byte(configHead(t, ring, "afpacket", nil)+`  metrics: ""
  ports:
    - name: m0
      device: vt
      addresses: [198.18.3.2/24]
      mirror: {rule: 7, vni: [123, 456]}
`), 0o600)
	run(t, bin("fwd"), "--check-config", cfg)
	fwd := (&topo{t: t}).start(T, nil, bin("fwd"), "--config", cfg)
	waitControl(t, cfg)
	writer := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", "")
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })

	tp := &topo{t: t}
	src := testdata("ns-mix-nano.pcap")
	_, out := tp.role(M, "inject", src, "vx123")
	want := line(t, out, "inject")
	_, out = tp.role(M, "inject", src, "vx999") // not configured: counted, not stored
	line(t, out, "inject")
	src2 := testdata("gopacket-dns.pcap")
	_, out = tp.role(M, "inject", src2, "vx456") // another session
	n2, _ := strconv.Atoi(line(t, out, "inject"))
	_, out = tp.role(M, "vxlan-cut", "198.18.3.2", "123", "1000")
	line(t, out, "vxlan-cut")
	n, _ := strconv.Atoi(want)
	s := waitStats(t, cfg, func(s ctl.Stats) bool {
		return s.Drops["mirror_captured"] >= uint64(n+n2+1) && s.Drops["mirror_vni_not_configured"] >= uint64(n)
	})
	if s.Drops["mirror_captured"] != uint64(n+n2+1) || s.Drops["mirror_vni_not_configured"] != uint64(n) || s.CaptureDrops != 0 {
		t.Fatalf("mirror counters: captured %d (want %d), other VNI %d (want %d), capture drops %d",
			s.Drops["mirror_captured"], n+n2+1, s.Drops["mirror_vni_not_configured"], n, s.CaptureDrops)
	}
	fwd.Process.Signal(syscall.SIGTERM)
	fwd.Wait()
	waitStored(t, ring)

	all := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q")
	if recs := pcapRecords(t, all); len(recs) != n+n2+1 {
		t.Fatalf("stored %d records, want %d", len(recs), n+n2+1)
	}
	checkMirrorOrigins(t, cfg, store, n, n2)
	got := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "--vni", "123")
	recs := pcapRecords(t, got)
	if len(recs) != n+1 {
		t.Fatalf("stored %d records, want %d", len(recs), n+1)
	}
	// The replayed capture, byte for byte and as tcpdump reads it (but for
	// the times: the store has when fwd received each frame).
	gotFile := filepath.Join(t.TempDir(), "got.pcap")
	os.WriteFile(gotFile, got, 0o600)
	strip := func(s string) string {
		var b strings.Builder
		for _, l := range strings.Split(s, "\n") {
			if l != "" && l[0] != '\t' && l[0] != ' ' {
				if _, rest, ok := strings.Cut(l, " "); ok {
					l = rest // the time stamp
				}
			}
			b.WriteString(l + "\n")
		}
		return b.String()
	}
	wantText := strip(tcpdumpText(t, src))
	gotText := strip(string(run(t, "tcpdump", "--time-stamp-precision=nano", "-nn", "-tt", "-e", "-x", "-c", want, "-r", gotFile)))
	if gotText != wantText {
		t.Fatalf("stored inner frames differ from the capture replayed:\n%s\nwant\n%s", gotText, wantText)
	}
	// The cut packet: 100 bytes kept, its wire length from its IP header.
	last := got[len(got)-16-100:]
	if incl, orig := binary.LittleEndian.Uint32(last[8:]), binary.LittleEndian.Uint32(last[12:]); incl != 100 || orig != 1014 {
		t.Errorf("cut mirror packet stored with %d of %d bytes, want 100 of 1014", incl, orig)
	}
}

// checkMirrorOrigins: the pcapng slice names each packet's interface by
// its session's VNI and says the outer source in its comment, as tshark
// reads them; a --vni slice is, record for record, what tshark selects by
// interface name on that pcapng; and a filter combines with --vni.
func checkMirrorOrigins(t *testing.T, cfg, store string, n123, n456 int) {
	t.Helper()
	need(t, "tshark")
	dir := t.TempDir()
	ng := filepath.Join(dir, "all.pcapng")
	run(t, bin("fmslice"), "--config", cfg, "--store", store, "--from", "0", "--to", "now", "-q", "--format", "pcapng", "-w", ng)
	fields := run(t, "tshark", "-r", ng, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.comment", "-e", "frame.packet_flags_direction")
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimRight(string(fields), "\n"), "\n") {
		count[l]++
	}
	want := map[string]int{
		"mirror:vni-123\tport=m0 dir=in rule=7 mirror vni=123 src=198.18.3.1\t0x00000001": n123 + 1,
		"mirror:vni-456\tport=m0 dir=in rule=7 mirror vni=456 src=198.18.3.1\t0x00000001": n456,
	}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("tshark on the pcapng: interface, comment, direction counted %v, want %v", count, want)
	}
	for _, vni := range []string{"123", "456"} {
		sel := filepath.Join(dir, "sel"+vni+".pcap")
		run(t, "tshark", "-r", ng, "-Y", `frame.interface_name == "mirror:vni-`+vni+`"`, "-F", "nsecpcap", "-w", sel)
		tsharkSel, _ := os.ReadFile(sel)
		got := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "--vni", vni)
		if g, w := pcapRecords(t, got), pcapRecords(t, tsharkSel); fmt.Sprint(g) != fmt.Sprint(w) || len(g) == 0 {
			t.Fatalf("--vni %s: %d records; tshark's selection on the pcapng: %d, or they differ", vni, len(g), len(w))
		}
		// The same with a filter, against tcpdump's on tshark's selection.
		got = run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "--vni", vni, "tcp")
		filtered := run(t, "tcpdump", "-r", sel, "-w", "-", "tcp")
		if g, w := pcapRecords(t, got), pcapRecords(t, filtered); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Fatalf("--vni %s tcp: %d records, tcpdump on tshark's selection %d", vni, len(g), len(w))
		}
	}
	if got := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", "-q", "--vni", "999"); len(got) != 24 {
		t.Fatalf("--vni 999 (not captured): %d bytes, want the pcap header alone", len(got))
	}
}
