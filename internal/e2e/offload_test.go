package e2e

// fwd between hosts that keep the kernel's default offloads (TSO, GSO,
// checksum offload: every real host and cloud NIC has them), with GRO on
// and off on fwd's own ports, in every capture mode. A 100 MB TCP transfer
// must arrive intact, and the captured copies of it, reassembled, must give
// the same bytes; every captured segment must fit the MTU and carry valid
// IP and TCP checksums. The checks here are written from the RFCs, sharing
// nothing with fwd's own checksum code.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/shmring"
)

const offloadMTU = 1500

// offloadModes are the capture modes, each on a rule of its own (X.10+i on
// A's side, Y.10+i on B's), so one fwd serves every mode at once.
var offloadModes = []string{"none", "ingress", "egress", "inline", "both"}

func TestOffloadsAFPacket(t *testing.T) {
	for _, gro := range []bool{false, true} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			tp := newTopoWith(t, topoOpts{offloads: true, fwdGRO: gro})
			// The none rule through fwd too: the kernel fast path has a test of its own.
			offloadSuite(t, tp, bin("fwd"), "afpacket", nil, [2]string{tp.f0, tp.f1}, "  fastpath: off\n")
		})
	}
}

// offloadConfig is the offload suite's configuration; fwdExtra are lines
// added to its fwd section (fastpath_test.go).
func offloadConfig(t *testing.T, ring, backend string, eal []string, devs [2]string, fwdExtra ...string) string {
	var rules strings.Builder
	for i, m := range offloadModes {
		fmt.Fprintf(&rules, `    - {id: %d, in: p0, local: 198.18.1.%d, peer: 198.18.1.2, out: p1, out_local: 198.18.2.%d, target: 198.18.2.2, capture: %s}
`, 10+i, 10+i, 10+i, m)
	}
	var x, y []string
	for i := range offloadModes {
		x = append(x, fmt.Sprintf("198.18.1.%d/24", 10+i))
		y = append(y, fmt.Sprintf("198.18.2.%d/24", 10+i))
	}
	return writeConfig(t, configHead(t, ring, backend, eal)+strings.Join(fwdExtra, "")+fmt.Sprintf(`  ports:
    - {name: p0, device: %s, addresses: [%s]}
    - {name: p1, device: %s, addresses: [%s]}
  rules:
%s`, devs[0], strings.Join(x, ", "), devs[1], strings.Join(y, ", "), rules.String()))
}

func offloadSuite(t *testing.T, tp *topo, fwdBin, backend string, eal []string, devs [2]string, fwdExtra ...string) ctl.Stats {
	const size = 100 << 20
	// The ring holds every copy of the transfers (both mode: two), so the
	// writer's speed on a busy machine cannot turn into capture drops.
	ring := makeRing(t, "1GiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := offloadConfig(t, ring, backend, eal, devs, fwdExtra...)
	run(t, fwdBin, "--check-config", cfg)
	tp.start(tp.nsF, nil, fwdBin, "--config", cfg)
	waitControl(t, cfg)
	writer := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", "")
	writer.Stderr = os.Stderr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })

	sums := map[int]string{}
	for i := range offloadModes {
		port := 5100 + i
		x := net.ParseIP(fmt.Sprintf("198.18.1.%d", 10+i))
		y := net.ParseIP(fmt.Sprintf("198.18.2.%d", 10+i))
		got := tp.tcpTransferSum(x, port, size, y)
		sums[port] = got
	}
	s := stats(t, cfg)
	if s.CaptureDrops != 0 {
		t.Fatalf("fwd dropped %d capture copies (ring full)", s.CaptureDrops)
	}
	// TCP resends what is lost, so the transfer's SHA-256 cannot show a
	// frame fwd dropped; fwd's counters can.
	for _, r := range []string{"bad_offload_metadata", "larger_than_mtu", "tx_ring_full", "tx_rejected", "bad_ip_length", "short_frame"} {
		if s.Drops[r] != 0 {
			t.Errorf("fwd dropped %d frames as %s", s.Drops[r], r)
		}
	}
	if s.SuperFrames == 0 {
		t.Fatal("fwd saw no super-frame: the hosts' offloads were not in play")
	}
	t.Logf("fwd: %d super-frames, %d packets forwarded, %d captured", s.SuperFrames, s.Forwarded, s.Captured)
	for _, p := range s.Ports {
		if p.TxStalls != 0 {
			t.Errorf("port %s: %d transmit stalls", p.Name, p.TxStalls)
		}
	}
	waitStored(t, ring)

	for i, mode := range offloadModes {
		port := 5100 + i
		out := run(t, bin("fmslice"), "--store", store, "--from", "0", "--to", "now", fmt.Sprintf("tcp port %d", port))
		streams := checkSegments(t, mode, out, uint16(port), offloadMTU)
		want := map[string]int{"none": 0, "ingress": 1, "egress": 1, "inline": 1, "both": 2}[mode]
		if len(streams) != want {
			t.Fatalf("%s: %d captured streams towards port %d, want %d", mode, len(streams), port, want)
		}
		for pair, st := range streams {
			data, err := st.bytes(size)
			if err != nil {
				t.Fatalf("%s %s: %v", mode, pair, err)
			}
			if sum := fmt.Sprintf("%x", sha256.Sum256(data)); sum != sums[port] {
				t.Fatalf("%s %s: reassembled capture has SHA-256 %s, the transfer %s", mode, pair, sum, sums[port])
			}
		}
		t.Logf("%s: %d streams reassembled to the transferred bytes", mode, len(streams))
	}
	return stats(t, cfg)
}

// waitControl waits for fwd's control socket to answer.
func waitControl(t *testing.T, cfg string) {
	t.Helper()
	for i := 0; ; i++ {
		if _, _, code := runCode(t, bin("fmctl"), "--socket", socketOf(t, cfg), "stats"); code == 0 {
			return
		}
		if i == 300 {
			t.Fatal("fwd did not open its control socket in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitStored waits until the writer has taken everything from the ring
// (it flushes every 100 ms).
func waitStored(t *testing.T, ring string) {
	t.Helper()
	for i := 0; i < 1200; i++ {
		out, _, code := runCode(t, bin("fmring"), "info", "--ring", ring, "--json")
		if code == 0 && ringDrained(out) {
			time.Sleep(500 * time.Millisecond) // the last flush
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the writer did not drain the ring in 120 s")
}

// tcpTransferSum is tcpTransfer returning the SHA-256 of what B received.
func (tp *topo) tcpTransferSum(dst net.IP, port int, size int64, wantSrc net.IP) string {
	t := tp.t
	t.Helper()
	_, sink := tp.role(tp.nsB, "tcp-sink", net.JoinHostPort(addrB.String(), fmt.Sprint(port)))
	line(t, sink, "tcp-sink")
	_, src := tp.role(tp.nsA, "tcp-source", net.JoinHostPort(dst.String(), fmt.Sprint(port)), fmt.Sprint(size))
	sent := line(t, src, "tcp-source")
	got := line(t, sink, "tcp-sink")
	if !strings.HasPrefix(got, sent+" ") {
		t.Fatalf("TCP transfer to %s:%d: sent %q, received %q", dst, port, sent, got)
	}
	f := strings.Fields(got)
	if f[2] != wantSrc.String() {
		t.Fatalf("B saw the connection from %s, want %s", f[2], wantSrc)
	}
	return f[1]
}

// stream is one direction of a captured TCP connection, by offset from the
// SYN's sequence number.
type stream struct {
	isn   uint32
	syn   bool
	segs  map[uint32][]byte // relative seq -> payload (retransmissions overwrite)
	total int
}

func (s *stream) bytes(size int) ([]byte, error) {
	if !s.syn {
		return nil, fmt.Errorf("no SYN captured")
	}
	buf := make([]byte, size)
	have := make([]bool, size)
	for off, p := range s.segs {
		if int(off)+len(p) > size {
			return nil, fmt.Errorf("segment at %d+%d past the %d bytes sent", off, len(p), size)
		}
		copy(buf[off:], p)
		for i := range p {
			have[int(off)+i] = true
		}
	}
	for i, h := range have {
		if !h {
			return nil, fmt.Errorf("byte %d of %d never captured", i, size)
		}
	}
	return buf, nil
}

// checkSegments reads a pcap of TCP packets, checks each record (length
// within the MTU, IPv4 length and checksums right) and gathers the
// payloads sent to dport by (source, destination) address pair.
func checkSegments(t *testing.T, mode string, pcap []byte, dport uint16, mtu int) map[string]*stream {
	t.Helper()
	if len(pcap) < 24 || binary.LittleEndian.Uint32(pcap) != 0xa1b23c4d && binary.LittleEndian.Uint32(pcap) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian pcap", mode)
	}
	streams := map[string]*stream{}
	n := 0
	for off := 24; off+16 <= len(pcap); n++ {
		incl := int(binary.LittleEndian.Uint32(pcap[off+8:]))
		orig := int(binary.LittleEndian.Uint32(pcap[off+12:]))
		f := pcap[off+16 : off+16+incl]
		off += 16 + incl
		if incl != orig {
			t.Fatalf("%s: record %d cut (%d of %d bytes)", mode, n, incl, orig)
		}
		if len(f) > 14+mtu {
			t.Fatalf("%s: record %d has %d bytes, more than the MTU allows", mode, n, len(f))
		}
		if binary.BigEndian.Uint16(f[12:]) != 0x0800 {
			continue
		}
		ip := f[14:]
		ihl := int(ip[0]&15) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot != len(ip) {
			t.Fatalf("%s: record %d: IP total length %d, %d bytes there", mode, n, tot, len(ip))
		}
		if ones(ip[:ihl], 0) != 0xffff {
			t.Fatalf("%s: record %d: bad IP header checksum", mode, n)
		}
		if ip[9] != 6 {
			continue
		}
		tcp := ip[ihl:]
		var ph uint32
		for i := 12; i < 20; i += 2 {
			ph += uint32(binary.BigEndian.Uint16(ip[i:]))
		}
		ph += 6 + uint32(len(tcp))
		if ones(tcp, ph) != 0xffff {
			t.Fatalf("%s: record %d: bad TCP checksum (%s -> %s, seq %d, %d bytes)", mode, n,
				net.IP(ip[12:16]), net.IP(ip[16:20]), binary.BigEndian.Uint32(tcp[4:]), len(tcp))
		}
		if binary.BigEndian.Uint16(tcp[2:]) != dport {
			continue
		}
		key := fmt.Sprintf("%s->%s", net.IP(ip[12:16]), net.IP(ip[16:20]))
		st := streams[key]
		if st == nil {
			st = &stream{segs: map[uint32][]byte{}}
			streams[key] = st
		}
		seq := binary.BigEndian.Uint32(tcp[4:])
		if tcp[13]&0x02 != 0 {
			st.isn, st.syn = seq, true
			continue
		}
		pay := tcp[int(tcp[12]>>4)*4:]
		if len(pay) > 0 {
			if !st.syn {
				t.Fatalf("%s %s: data before the SYN", mode, key)
			}
			st.segs[seq-st.isn-1] = append([]byte(nil), pay...)
			st.total += len(pay)
		}
	}
	return streams
}

// ones is the one's-complement sum of b (RFC 1071), plus s, folded.
func ones(b []byte, s uint32) uint16 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// ringDrained says, from `fmring info --json`, whether the writer has
// taken every record the ring holds.
func ringDrained(info []byte) bool {
	var in shmring.Info
	if json.Unmarshal(info, &in) != nil {
		return false
	}
	for _, c := range in.Consumers {
		if c.Name == "writer" {
			return c.LagRecords == 0 && c.CursorSeq == in.NextSeq
		}
	}
	return false
}
