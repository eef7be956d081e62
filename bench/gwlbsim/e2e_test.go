package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// asMain makes the test binary gwlbsim itself when the end-to-end test
// starts it in the gwlb namespace, so that no separate build is needed.
const asMain = "GWLBSIM_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestEndToEnd runs gwlbsim in the documented topology with a trivial echo
// appliance (a UDP socket on 6081 in the appliance namespace that sends
// each datagram back with the outer addresses swapped and the ports kept)
// in place of fwd, pings the server from the client over IPv4 and IPv6,
// and sends 10 MB over TCP/IPv4 and 1 MB over TCP/IPv6 from the client to
// the server through it: the bytes arrive intact (SHA-256) and gwlbsim
// reports no mismatch.
func TestEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, a TUN device and raw sockets")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2 to set up the namespaces")
	}
	pre := fmt.Sprintf("gws%d", os.Getpid())
	C, G, A, S := pre+"c", pre+"g", pre+"a", pre+"s"
	for _, ns := range []string{C, G, A, S} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "-n", G, "link", "add", "vc", "type", "veth", "peer", "name", "vc", "netns", C)
	sh(t, "ip", "-n", G, "link", "add", "va", "mtu", "9000", "type", "veth", "peer", "name", "va", "mtu", "9000", "netns", A)
	sh(t, "ip", "-n", G, "link", "add", "vs", "type", "veth", "peer", "name", "vs", "netns", S)
	// The inner traffic is IPv4 and IPv6 (2001:2::/48); the tunnel IPv4.
	for _, a := range []struct{ ns, dev, addr, addr6, via, via6 string }{
		{C, "vc", "198.18.0.2/24", "2001:2::2/64", "198.18.0.1", "2001:2::1"},
		{G, "vc", "198.18.0.1/24", "2001:2::1/64", "", ""},
		{G, "va", "198.18.1.1/24", "", "", ""},
		{A, "va", "198.18.1.2/24", "", "", ""},
		{G, "vs", "198.18.2.1/24", "2001:2:0:2::1/64", "", ""},
		{S, "vs", "198.18.2.2/24", "2001:2:0:2::2/64", "198.18.2.1", "2001:2:0:2::1"},
	} {
		sh(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		if a.addr6 != "" {
			sh(t, "ip", "-n", a.ns, "addr", "add", a.addr6, "dev", a.dev, "nodad")
		}
		sh(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
		if a.via != "" {
			sh(t, "ip", "-n", a.ns, "route", "add", "default", "via", a.via)
			sh(t, "ip", "-n", a.ns, "-6", "route", "add", "default", "via", a.via6)
		}
	}
	sh(t, "ip", "netns", "exec", G, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")

	echoed := startEcho(t, A, netip.MustParseAddr("198.18.1.2"))

	sim := exec.Command("ip", "netns", "exec", G, os.Args[0], "--tun", "gwlb0", "--local", "198.18.1.1", "--appliance", "198.18.1.2")
	sim.Env = append(os.Environ(), asMain+"=1")
	sim.Stderr = os.Stderr
	out, err := sim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			sim.Process.Kill() // by its PID: ip netns exec execs gwlbsim in place
			sim.Wait()
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
	case <-time.After(30 * time.Second):
		t.Fatal("gwlbsim not ready after 30 s")
	}
	sh(t, "ip", "-n", G, "rule", "add", "iif", "vc", "lookup", "100")
	sh(t, "ip", "-n", G, "rule", "add", "iif", "vs", "lookup", "100")
	sh(t, "ip", "-n", G, "route", "add", "default", "dev", "gwlb0", "table", "100")

	sh(t, "ip", "-6", "-n", G, "rule", "add", "iif", "vc", "lookup", "100")
	sh(t, "ip", "-6", "-n", G, "rule", "add", "iif", "vs", "lookup", "100")
	sh(t, "ip", "-6", "-n", G, "route", "add", "default", "dev", "gwlb0", "table", "100")

	sh(t, "ip", "netns", "exec", C, "ping", "-c", "2", "-i", "0.2", "-W", "5", "198.18.2.2")
	sh(t, "ip", "netns", "exec", C, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "5", "2001:2:0:2::2")
	d := transfer(t, C, S, "198.18.2.2:5001", 10<<20)
	t.Logf("10 MB over IPv4 through gwlbsim and the echo appliance in %v", d.Round(time.Millisecond))
	d = transfer(t, C, S, "[2001:2:0:2::2]:5001", 1<<20)
	t.Logf("1 MB over IPv6 in %v; the echo returned %d datagrams in all", d.Round(time.Millisecond), echoed())

	// Stop gwlbsim by its PID and read its counters.
	sim.Process.Signal(syscall.SIGTERM)
	counters := map[string]uint64{}
	var report strings.Builder
	for lines.Scan() {
		report.WriteString(lines.Text() + "\n")
		if k, v, ok := strings.Cut(lines.Text(), " "); ok {
			counters[k], _ = strconv.ParseUint(v, 10, 64)
		}
	}
	err = sim.Wait()
	stopped = true
	t.Logf("gwlbsim's counters:\n%s", report.String())
	if err != nil || counters["mismatches"] != 0 || counters["send_errors"] != 0 {
		t.Errorf("gwlbsim: %v\n%s", err, report.String())
	}
	if counters["delivered"] < (10<<20)/9000 || counters["sent"] < counters["delivered"] {
		t.Errorf("gwlbsim delivered %d of %d sent\n%s", counters["delivered"], counters["sent"], report.String())
	}
}

// transfer sends size bytes over TCP from namespace C to a listener on
// addr in namespace S, checks them by SHA-256 and returns how long it took.
func transfer(t *testing.T, C, S, addr string, size int) time.Duration {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var ln net.Listener
	inNS(t, S, func() (err error) { ln, err = net.Listen("tcp", addr); return })
	defer ln.Close()
	got := make(chan [sha256.Size]byte, 1)
	go func() {
		h := sha256.New()
		c, err := ln.Accept()
		if err == nil {
			c.SetDeadline(time.Now().Add(120 * time.Second))
			io.Copy(h, c)
			c.Close()
		}
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		got <- sum
	}()
	var conn net.Conn
	inNS(t, C, func() (err error) {
		conn, err = (&net.Dialer{Timeout: 20 * time.Second}).Dial("tcp", addr)
		return
	})
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(120 * time.Second))
	start := time.Now()
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("send to %s: %v", addr, err)
	}
	conn.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, conn) // until the server closes: it has read everything
	if sum := <-got; sum != sha256.Sum256(data) {
		t.Errorf("%s received other bytes (SHA-256 %x, sent %x)", addr, sum, sha256.Sum256(data))
	}
	return time.Since(start)
}

// startEcho starts, in namespace ns, the echo appliance: it receives
// GENEVE on addr:6081 and sends each datagram back unchanged, from addr to
// where it came from, with the same ports, through a raw socket (a UDP
// socket could not send from the GWLB's source port). It returns a count
// of datagrams echoed.
func startEcho(t *testing.T, ns string, addr netip.Addr) func() int {
	var conn *net.UDPConn
	raw := -1
	inNS(t, ns, func() (err error) {
		if conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, geneveUDPPort))); err != nil {
			return err
		}
		raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
	conn.SetReadBuffer(8 << 20)
	count := make(chan int, 1)
	count <- 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		out := make([]byte, 65536+ipv4HdrLen+udpHdrLen)
		me := addr.As4()
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			// The outer headers anew: the addresses swapped, the ports kept.
			total := ipv4HdrLen + udpHdrLen + n
			ip, udp := out[:ipv4HdrLen], out[ipv4HdrLen:ipv4HdrLen+udpHdrLen]
			peer := from.Addr().Unmap().As4()
			copy(ip, []byte{0x45, 0, byte(total >> 8), byte(total), 0, 0, 0x40, 0, 64, 17, 0, 0})
			copy(ip[12:], me[:])
			copy(ip[16:], peer[:])
			be.PutUint16(ip[10:], ipChecksum(ip))
			be.PutUint16(udp[0:], from.Port())
			be.PutUint16(udp[2:], geneveUDPPort)
			be.PutUint16(udp[4:], uint16(udpHdrLen+n))
			be.PutUint16(udp[6:], 0)
			copy(out[ipv4HdrLen+udpHdrLen:], buf[:n])
			if unix.Sendto(raw, out[:total], 0, &unix.SockaddrInet4{Addr: peer}) == nil {
				count <- <-count + 1
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done; unix.Close(raw) })
	return func() int { c := <-count; count <- c; return c }
}

// inNS runs f on a thread in network namespace ns (sockets keep the
// namespace they were made in) and brings the thread back.
func inNS(t *testing.T, ns string, f func() error) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so it ends with this goroutine instead
		// of serving others in the wrong namespace.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
	if ferr != nil {
		t.Fatalf("in %s: %v", ns, ferr)
	}
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}
