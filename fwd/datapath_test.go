package fwd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/fmcap/fmcap/shmring"
)

// The test topology: A 198.18.1.2 ─ p0 [X 198.18.1.1] fwd [Y 198.18.2.1] p1 ─ B 198.18.2.2.
// p1 also has a gateway 198.18.2.254 for target C 198.18.9.9 (rule 2).
var (
	macP0 = [6]byte{0x02, 0, 0, 0, 0, 0x10}
	macP1 = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	macA  = [6]byte{0x02, 0, 0, 0, 0, 0xaa}
	macB  = [6]byte{0x02, 0, 0, 0, 0, 0xbb}
	macGW = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
	ipA   = net.IPv4(198, 18, 1, 2).To4()
	ipX   = net.IPv4(198, 18, 1, 1).To4()
	ipX2  = net.IPv4(198, 18, 1, 3).To4()
	ipY   = net.IPv4(198, 18, 2, 1).To4()
	ipB   = net.IPv4(198, 18, 2, 2).To4()
	ipC   = net.IPv4(198, 18, 9, 9).To4()
	ipGW  = net.IPv4(198, 18, 2, 254).To4()
	ipR   = net.IPv4(198, 18, 2, 77).To4()
)

const testConfig = `
ring:
  path: ""
fwd:
  ports:
    - name: p0
      device: veth0
      addresses: [198.18.1.1/24, 198.18.1.3/24, 198.18.1.4/24, "2001:2:0:1::1/64"]
    - name: p1
      device: veth1
      addresses: [198.18.2.1/24, "2001:2:0:2::1/64"]
      gateway: 198.18.2.254
  rules:
    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.2, capture: both}
    - {id: 3, in: p0, local: "2001:2:0:1::1", peer: "2001:2:0:1::2", out: p1, out_local: "2001:2:0:2::1", target: "2001:2:0:2::2", capture: both}
    - {id: 2, in: p0, local: 198.18.1.4, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.9.9, capture: inline, snap: 60}
`

var ringSeq atomic.Int64

type sink struct {
	sent []sentFrame
}

type sentFrame struct {
	port  int
	frame []byte
}

func (s *sink) send(port int, f []byte) bool {
	s.sent = append(s.sent, sentFrame{port, append([]byte(nil), f...)})
	return true
}

type harness struct {
	t    *testing.T
	d    *Datapath
	tx   *sink
	cons *shmring.Consumer
	ring *shmring.Ring
}

// newHarness builds a datapath on the test config; with capture, a real
// ring in a temp dir and a consumer reading it. Neighbors A, B and the
// gateway are resolved by ARP replies, as on a wire.
func newHarness(t testing.TB, capture bool) *harness { return newHarnessRing(t, capture, 1<<20) }

func newHarnessRing(t testing.TB, capture bool, ringSize uint64) *harness {
	t.Helper()
	_, ports, rules, err := parseConfig("test.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{tx: &sink{}}
	var prod *shmring.Producer
	if capture {
		h.ring, prod, h.cons = testRing(t, ringSize)
	}
	h.d = NewDatapath(ports, [][6]byte{macP0, macP1}, buildTable(ports, rules), prod, h.tx)
	h.d.Begin(1e9)
	h.in(0, arpFrame(2, macA, ipA, macP0, ipX))
	h.in(1, arpFrame(2, macB, ipB, macP1, ipY))
	h.in(1, arpFrame(2, macGW, ipGW, macP1, ipY))
	h.in(0, naFrame(macA, ip6A, macP0))
	h.in(1, naFrame(macB, ip6B, macP1))
	h.tx.sent = nil
	return h
}

// testRing is a real ring of ringSize data bytes (in /dev/shm when there
// is one, as in production), its producer and a lossless consumer "t".
func testRing(t testing.TB, ringSize uint64) (*shmring.Ring, *shmring.Producer, *shmring.Consumer) {
	path := filepath.Join(t.TempDir(), "ring")
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		path = filepath.Join("/dev/shm", fmt.Sprintf("fwd-test-%d-%d", os.Getpid(), ringSeq.Add(1)))
		t.Cleanup(func() { os.Remove(path) })
	}
	if err := shmring.Create(path, shmring.Config{DataSize: ringSize, MaxCaplen: 65535, Consumers: []shmring.ConsumerSpec{{Name: "t", Mode: shmring.Lossless}}}); err != nil {
		t.Fatal(err)
	}
	ring, err := shmring.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	prod, err := ring.NewProducer(shmring.Live)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ring.Attach("t")
	if err != nil {
		t.Fatal(err)
	}
	return ring, prod, cons
}

func (h *harness) in(port int, f []byte) (int, []byte) {
	b := append([]byte(nil), f...)
	out := h.d.Handle(port, b, len(b))
	h.d.End()
	return out, b
}

func arpFrame(op uint16, sha [6]byte, spa net.IP, tha [6]byte, tpa net.IP) []byte {
	dst := tha
	if op == 1 {
		dst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	return build(&layers.Ethernet{SrcMAC: sha[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: op, SourceHwAddress: sha[:], SourceProtAddress: spa, DstHwAddress: tha[:], DstProtAddress: tpa})
}

func build(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	for _, l := range ls {
		if n, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			for _, o := range ls {
				if ip, ok := o.(*layers.IPv4); ok {
					n.SetNetworkLayerForChecksum(ip)
				}
				if ip, ok := o.(*layers.IPv6); ok {
					n.SetNetworkLayerForChecksum(ip)
				}
			}
		}
	}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func eth(src, dst [6]byte) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeIPv4}
}

func ip(src, dst net.IP, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Id: 0x1234, Protocol: proto, SrcIP: src, DstIP: dst}
}

func tcpFrame(srcMAC, dstMAC [6]byte, src, dst net.IP, payload string) []byte {
	return build(eth(srcMAC, dstMAC), ip(src, dst, layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Ack: 9, PSH: true, ACK: true, Window: 500,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}},
		gopacket.Payload(payload))
}

func udpFrame(srcMAC, dstMAC [6]byte, src, dst net.IP, payload string) []byte {
	return build(eth(srcMAC, dstMAC), ip(src, dst, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload(payload))
}

// checkSums verifies every checksum of an IPv4 frame from scratch: the IP
// header, TCP/UDP over the pseudo-header (unfragmented packets), ICMP, and
// for ICMP errors the quoted IP header.
func checkSums(t testing.TB, f []byte) {
	t.Helper()
	for _, e := range sumErrors(f) {
		t.Error(e)
	}
}

func sumErrors(f []byte) []string {
	if etherType(f) == etherIPv6 {
		return sumErrors6(f)
	}
	var errs []string
	var p ippkt
	if r := parseIPv4(f, &p); r != rOK {
		return []string{"does not parse: " + reasonNames[r]}
	}
	if c := csum(f[p.ip:p.ip+p.ihl], 0); c != 0 {
		errs = append(errs, fmt.Sprintf("IP header checksum wrong (residue %#04x)", c))
	}
	if p.frag || p.l4 == 0 {
		return errs
	}
	switch p.proto {
	case protoTCP, protoUDP:
		if p.proto == protoUDP && be.Uint16(f[p.l4+6:]) == 0 {
			return errs
		}
		if c := csum(f[p.l4:p.end], pseudoSum(f, &p)); c != 0 {
			errs = append(errs, fmt.Sprintf("L4 checksum wrong (residue %#04x)", c))
		}
	case protoICMP:
		if c := csum(f[p.l4:p.end], 0); c != 0 {
			errs = append(errs, fmt.Sprintf("ICMP checksum wrong (residue %#04x)", c))
		}
		if p.l4+28 <= p.end && isICMPError(f[p.l4]) {
			q := p.l4 + 8
			qihl := int(f[q]&15) * 4
			if f[q]>>4 == 4 && qihl >= 20 && q+qihl <= p.end {
				if c := csum(f[q:q+qihl], 0); c != 0 {
					errs = append(errs, fmt.Sprintf("quoted IP header checksum wrong (residue %#04x)", c))
				}
			}
		}
	}
	return errs
}

func addrs(f []byte) (src, dst net.IP) {
	return net.IP(f[26:30]), net.IP(f[30:34])
}

func wantAddrs(t testing.TB, f []byte, src, dst net.IP) {
	t.Helper()
	s, d := addrs(f)
	if !s.Equal(src) || !d.Equal(dst) {
		t.Errorf("addresses %v → %v, want %v → %v", s, d, src, dst)
	}
}

func wantMACs(t testing.TB, f []byte, src, dst [6]byte) {
	t.Helper()
	if !bytes.Equal(f[6:12], src[:]) || !bytes.Equal(f[0:6], dst[:]) {
		t.Errorf("MACs %x → %x, want %x → %x", f[6:12], f[0:6], src, dst)
	}
}

func TestForwardBothDirections(t *testing.T) {
	h := newHarness(t, false)
	for _, tc := range []struct {
		name  string
		frame func(srcMAC, dstMAC [6]byte, src, dst net.IP, payload string) []byte
	}{{"tcp", tcpFrame}, {"udp", udpFrame}} {
		in := tc.frame(macA, macP0, ipA, ipX, "hello from A")
		out, f := h.in(0, in)
		if out != 1 {
			t.Fatalf("%s A→X: out %d, want 1 (drops %v)", tc.name, out, h.d.c.reasons)
		}
		wantAddrs(t, f, ipY, ipB)
		wantMACs(t, f, macP1, macB)
		if f[22] != 63 {
			t.Errorf("TTL %d, want 63", f[22])
		}
		checkSums(t, f)
		// The reply.
		rep := tc.frame(macB, macP1, ipB, ipY, "hello from B")
		out, f = h.in(1, rep)
		if out != 0 {
			t.Fatalf("%s B→Y: out %d, want 0", tc.name, out)
		}
		wantAddrs(t, f, ipX, ipA)
		wantMACs(t, f, macP0, macA)
		checkSums(t, f)
		// Everything after the L4 checksum is untouched.
		if !bytes.Equal(f[len(f)-12:], rep[len(rep)-12:]) {
			t.Errorf("payload changed")
		}
	}
	s := h.d.c.reasons[rOK]
	if s != 4 {
		t.Errorf("forwarded %d, want 4", s)
	}
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	h := newHarness(t, false)
	in := udpFrame(macA, macP0, ipA, ipX, "no checksum")
	in[34+6], in[34+7] = 0, 0
	out, f := h.in(0, in)
	if out != 1 {
		t.Fatalf("out %d", out)
	}
	if c := be.Uint16(f[34+6:]); c != 0 {
		t.Errorf("UDP checksum %#04x, want 0", c)
	}
	checkSums(t, f)
}

// A UDP checksum whose update comes out as zero must be sent as 0xffff.
func TestUDPChecksumNeverBecomesZero(t *testing.T) {
	h := newHarness(t, false)
	for i := 0; i < 1<<16; i++ {
		in := udpFrame(macA, macP0, ipA, ipX, "xx")
		in[42], in[43] = byte(i>>8), byte(i)
		be.PutUint16(in[34+6:], 0)
		var p ippkt
		parseIPv4(in, &p)
		be.PutUint16(in[34+6:], csum(in[p.l4:p.end], pseudoSum(in, &p)))
		if be.Uint16(in[34+6:]) == 0 {
			continue
		}
		_, f := h.in(0, in)
		if be.Uint16(f[34+6:]) == 0 {
			t.Fatalf("payload %#04x: checksum became 0", i)
		}
		checkSums(t, f)
		if t.Failed() {
			t.Fatalf("payload %#04x", i)
		}
	}
}

func TestARP(t *testing.T) {
	h := newHarness(t, false)
	other := [6]byte{2, 0, 0, 0, 0, 0x33}
	req := arpFrame(1, other, net.IPv4(198, 18, 1, 50).To4(), [6]byte{}, ipX2)
	out, f := h.in(0, req)
	if out != 0 {
		t.Fatalf("ARP request for a local address: out %d, want 0", out)
	}
	want := arpFrame(2, macP0, ipX2, other, net.IPv4(198, 18, 1, 50).To4())
	if !bytes.Equal(f[:42], want[:42]) {
		t.Errorf("ARP reply\n got %x\nwant %x", f[:42], want[:42])
	}
	// The asker is now a neighbor.
	if n := h.d.ports[0].neigh.m[netip.MustParseAddr("198.18.1.50")]; n == nil || n.mac != other {
		t.Errorf("asker not learned: %+v", n)
	}
	// Not for us: dropped.
	if out, _ := h.in(0, arpFrame(1, other, net.IPv4(198, 18, 1, 50).To4(), [6]byte{}, net.IPv4(198, 18, 1, 99).To4())); out != -1 {
		t.Errorf("ARP for another host answered")
	}
	// Gratuitous ARP from B with a new MAC moves the rule's next hop.
	newB := [6]byte{2, 0, 0, 0, 0, 0xbc}
	h.in(1, arpFrame(1, newB, ipB, [6]byte{}, ipB))
	_, f = h.in(0, tcpFrame(macA, macP0, ipA, ipX, "x"))
	wantMACs(t, f, macP1, newB)
}

func TestEchoToLocalAddress(t *testing.T) {
	h := newHarness(t, false)
	req := build(eth(macA, macP0), ip(ipA, ipX2, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 1}, gopacket.Payload("ping!"))
	out, f := h.in(0, req)
	if out != 0 {
		t.Fatalf("echo: out %d", out)
	}
	wantAddrs(t, f, ipX2, ipA)
	wantMACs(t, f, macP0, macA)
	if f[34] != 0 {
		t.Errorf("type %d, want echo reply", f[34])
	}
	checkSums(t, f)
	// An echo to an address with a rule for this peer is forwarded instead.
	req = build(eth(macA, macP0), ip(ipA, ipX, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 2}, gopacket.Payload("ping!"))
	if out, f = h.in(0, req); out != 1 {
		t.Fatalf("echo through rule: out %d", out)
	}
	wantAddrs(t, f, ipY, ipB)
	checkSums(t, f)
}

// icmpError quotes orig (a frame) in an ICMP error from src to dst.
func icmpError(srcMAC, dstMAC [6]byte, src, dst net.IP, typ, code uint8, orig []byte, quote int) []byte {
	q := orig[14:]
	if quote < len(q) {
		q = q[:quote]
	}
	return build(eth(srcMAC, dstMAC), ip(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}, gopacket.Payload(q))
}

func TestICMPErrors(t *testing.T) {
	h := newHarness(t, false)
	for _, quote := range []int{28, 48, 1000} {
		// B answers our UDP packet (Y → B) with port unreachable.
		sent := udpFrame(macP1, macB, ipY, ipB, "some datagram payload")
		e := icmpError(macB, macP1, ipB, ipY, 3, 3, sent, quote)
		out, f := h.in(1, e)
		if out != 0 {
			t.Fatalf("quote %d: out %d (drops %v)", quote, out, h.d.c.reasons)
		}
		wantAddrs(t, f, ipX, ipA)
		checkSums(t, f)
		// A must see its own packet A → X quoted.
		q := f[42:]
		if !net.IP(q[12:16]).Equal(ipA) || !net.IP(q[16:20]).Equal(ipX) {
			t.Errorf("quote %d: quoted %v → %v, want %v → %v", quote, net.IP(q[12:16]), net.IP(q[16:20]), ipA, ipX)
		}
		if quote >= 1000 { // the whole UDP datagram is quoted: its checksum must be right
			var qp ippkt
			frame := append(make([]byte, 14), q...)
			parseIPv4(frame, &qp)
			if c := csum(frame[qp.l4:qp.end], pseudoSum(frame, &qp)); c != 0 {
				t.Errorf("quote %d: quoted UDP checksum wrong", quote)
			}
		}
		// A router R on B's side says time exceeded: matched by the quote,
		// R's address stays.
		sent = tcpFrame(macP1, macGW, ipY, ipB, "tcp")
		e = icmpError(macGW, macP1, ipR, ipY, 11, 0, sent, quote)
		out, f = h.in(1, e)
		if out != 0 {
			t.Fatalf("quote %d: router error: out %d (drops %v)", quote, out, h.d.c.reasons)
		}
		wantAddrs(t, f, ipR, ipA)
		checkSums(t, f)
		q = f[42:]
		if !net.IP(q[12:16]).Equal(ipA) || !net.IP(q[16:20]).Equal(ipX) {
			t.Errorf("router error: quoted %v → %v", net.IP(q[12:16]), net.IP(q[16:20]))
		}
	}
	// A quote that is not ours is dropped.
	bogus := icmpError(macB, macP1, ipR, ipY, 3, 1, udpFrame(macP1, macB, ipB, ipY, "x"), 28)
	if out, _ := h.in(1, bogus); out != -1 {
		t.Errorf("error quoting someone else's packet forwarded")
	}
	// Redirects, from the rule's peer B and from a router R, are neither
	// forwarded (the gateway they name is on B's side) nor obeyed.
	for _, from := range []net.IP{ipB, ipR} {
		sent := tcpFrame(macP1, macB, ipY, ipB, "x")
		e := icmpError(macB, macP1, from, ipY, icmpRedirect, 1, sent, 28)
		copy(e[38:42], net.IPv4(198, 18, 2, 200).To4()) // the gateway field
		be.PutUint16(e[36:], 0)
		be.PutUint16(e[36:], csum(e[34:], 0))
		before := h.d.c.reasons[rICMPRedirect]
		if out, _ := h.in(1, e); out != -1 {
			t.Errorf("redirect from %v forwarded", from)
		}
		if got := h.d.c.reasons[rICMPRedirect]; got != before+1 {
			t.Errorf("redirect from %v: icmp_redirect counted %d times, want 1 (counters %v)", from, got-before, h.d.c.reasons)
		}
	}
}

// fragment splits an IPv4 frame into fragments of at most size payload
// bytes (a multiple of 8).
func fragment(f []byte, size int) [][]byte {
	hdr := append([]byte(nil), f[:34]...)
	payload := f[34:]
	var out [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		fr := append(append([]byte(nil), hdr...), payload[off:end]...)
		fo := uint16(off / 8)
		if end < len(payload) {
			fo |= 0x2000
		}
		be.PutUint16(fr[20:], fo)
		be.PutUint16(fr[16:], uint16(20+end-off))
		fr[24], fr[25] = 0, 0
		be.PutUint16(fr[24:], csum(fr[14:34], 0))
		out = append(out, fr)
	}
	return out
}

func TestFragments(t *testing.T) {
	h := newHarness(t, false)
	for _, proto := range []string{"udp", "tcp"} {
		var in []byte
		if proto == "udp" {
			in = udpFrame(macA, macP0, ipA, ipX, string(bytes.Repeat([]byte("fragmented "), 40)))
		} else {
			in = tcpFrame(macA, macP0, ipA, ipX, string(bytes.Repeat([]byte("fragmented "), 40)))
		}
		var got []byte
		for i, fr := range fragment(in, 160) {
			out, f := h.in(0, fr)
			if out != 1 {
				t.Fatalf("%s fragment %d: out %d (drops %v)", proto, i, out, h.d.c.reasons)
			}
			wantAddrs(t, f, ipY, ipB)
			checkSums(t, f)
			if i == 0 {
				got = append(got, f[:34]...)
			}
			got = append(got, f[34:]...)
		}
		// Reassembled, the L4 checksum (carried by the first fragment) is right.
		be.PutUint16(got[20:], 0)
		be.PutUint16(got[16:], uint16(len(got)-14))
		be.PutUint16(got[24:], 0)
		be.PutUint16(got[24:], csum(got[14:34], 0))
		checkSums(t, got)
	}
}

func TestDropReasons(t *testing.T) {
	h := newHarness(t, false)
	good := tcpFrame(macA, macP0, ipA, ipX, "payload")
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name  string
		frame []byte
		want  reason
	}{
		{"empty", nil, rShort},
		{"ethernet only", good[:14], rShort},
		{"cut IP header", good[:30], rShort},
		{"ihl 4", mut(func(b []byte) []byte { b[14] = 0x44; return b }), rBadIPHeader},
		{"version 6 in IPv4", mut(func(b []byte) []byte { b[14] = 0x65; return b }), rBadIPHeader},
		{"total length beyond frame", mut(func(b []byte) []byte { be.PutUint16(b[16:], 2000); return b }), rBadIPLength},
		{"total length below header", mut(func(b []byte) []byte { be.PutUint16(b[16:], 10); return b }), rBadIPLength},
		{"TCP header cut", mut(func(b []byte) []byte { be.PutUint16(b[16:], 30); return b[:44] }), rBadL4},
		{"ttl 1", mut(func(b []byte) []byte { b[22] = 1; return b }), rTTL},
		{"not our address", tcpFrame(macA, macP0, ipA, ipC, "x"), rNotLocal},
		{"no rule", tcpFrame(macA, macP0, net.IPv4(198, 18, 1, 9).To4(), ipX, "x"), rNoRule},
		{"IPv4 bytes typed IPv6", mut(func(b []byte) []byte { be.PutUint16(b[12:], etherIPv6); return b }), rBadIPHeader},
		{"vlan", mut(func(b []byte) []byte { be.PutUint16(b[12:], etherVLAN); return b }), rVLAN},
		{"other", mut(func(b []byte) []byte { be.PutUint16(b[12:], 0x88cc); return b }), rNotIPv4},
		{"short arp", arpFrame(1, macA, ipA, [6]byte{}, ipX)[:30], rBadARP},
	} {
		before := h.d.c.reasons[tc.want]
		if out, _ := h.in(0, tc.frame); out != -1 {
			t.Errorf("%s: forwarded", tc.name)
		}
		if h.d.c.reasons[tc.want] != before+1 {
			t.Errorf("%s: reason %s not counted (counters %v)", tc.name, reasonNames[tc.want], h.d.c.reasons)
		}
	}
	// Ethernet padding after the IP packet is kept and does not disturb.
	padded := append(append([]byte(nil), good...), make([]byte, 10)...)
	if out, f := h.in(0, padded); out != 1 || len(f) != len(padded) {
		t.Errorf("padded frame: out %d len %d", out, len(f))
	} else {
		checkSums(t, f[:len(good)])
	}
}

func TestNeighborQueue(t *testing.T) {
	h := newHarness(t, false)
	// Forget B, as after a failover.
	nb := h.d.ports[1].neigh.m[netip.MustParseAddr("198.18.2.2")]
	nb.state, nb.tries = nIncomplete, 0
	for i := 0; i < queueLen+2; i++ {
		if out, _ := h.in(0, tcpFrame(macA, macP0, ipA, ipX, "q")); out != -1 {
			t.Fatal("sent before resolution")
		}
	}
	if h.d.c.reasons[rNeighQueued] != queueLen || h.d.c.reasons[rNeighFull] != 2 {
		t.Errorf("queued %d full %d, want %d and 2", h.d.c.reasons[rNeighQueued], h.d.c.reasons[rNeighFull], queueLen)
	}
	if len(h.tx.sent) != 1 || etherType(h.tx.sent[0].frame) != etherARP || !net.IP(h.tx.sent[0].frame[38:42]).Equal(ipB) {
		t.Fatalf("want one ARP request for B, sent %v", h.tx.sent)
	}
	req := h.tx.sent[0].frame
	if !net.IP(req[28:32]).Equal(ipY) || !bytes.Equal(req[22:28], macP1[:]) {
		t.Errorf("ARP request from %v %x", net.IP(req[28:32]), req[22:28])
	}
	h.tx.sent = nil
	h.in(1, arpFrame(2, macB, ipB, macP1, ipY))
	if len(h.tx.sent) != queueLen {
		t.Fatalf("released %d, want %d", len(h.tx.sent), queueLen)
	}
	for _, s := range h.tx.sent {
		wantMACs(t, s.frame, macP1, macB)
		wantAddrs(t, s.frame, ipY, ipB)
		checkSums(t, s.frame)
	}
	// No answer: retries, then the queue is dropped and counted.
	nb.state, nb.tries = nIncomplete, 0
	h.tx.sent = nil
	h.in(0, tcpFrame(macA, macP0, ipA, ipX, "q"))
	now := int64(1e9)
	for i := 0; i < 4; i++ { // two retries, the failure, and a quiet pause
		now += retryInterval + 1
		h.d.Begin(now)
	}
	if got := h.d.c.reasons[rNeighFailed]; got != 1 {
		t.Errorf("unresolved drops %d, want 1", got)
	}
	if len(h.tx.sent) != maxTries {
		t.Errorf("ARP requests %d, want %d", len(h.tx.sent), maxTries)
	}
	// An off-subnet target goes to the gateway's MAC.
	_, f := h.in(0, tcpFrame(macA, macP0, ipA, net.IPv4(198, 18, 1, 4).To4(), "to C"))
	wantMACs(t, f, macP1, macGW)
	wantAddrs(t, f, ipY, ipC)
}

func TestCaptureModes(t *testing.T) {
	h := newHarness(t, true)
	in := tcpFrame(macA, macP0, ipA, ipX, "captured payload")
	_, f := h.in(0, in)
	// Rule 1 is "both": the ingress copy is the frame as received, the
	// egress copy the frame as sent.
	recs := h.drain(t)
	if len(recs) != 2 {
		t.Fatalf("records %d, want 2", len(recs))
	}
	if r := recs[0]; r.Dir != shmring.DirIngress || r.Port != 0 || r.Rule != 1 || !bytes.Equal(r.Data, in) || r.WireLen != uint32(len(in)) {
		t.Errorf("ingress record %+v", r)
	}
	if r := recs[1]; r.Dir != shmring.DirEgress || r.Port != 1 || r.Rule != 1 || !bytes.Equal(r.Data, f) {
		t.Errorf("egress record %+v", r)
	}
	// Rule 2 is "inline" with snap 60: A → C, cut to 60 bytes.
	in = tcpFrame(macA, macP0, ipA, net.IPv4(198, 18, 1, 4).To4(), "inline capture payload that is longer than the snap length")
	_, f = h.in(0, in)
	recs = h.drain(t)
	if len(recs) != 1 {
		t.Fatalf("records %d, want 1", len(recs))
	}
	r := recs[0]
	if r.Dir != shmring.DirInline || r.Rule != 2 || len(r.Data) != 60 || r.WireLen != uint32(len(f)) {
		t.Fatalf("inline record dir %d rule %d len %d wire %d", r.Dir, r.Rule, len(r.Data), r.WireLen)
	}
	wantAddrs(t, r.Data, ipA, ipC)
	// The inline packet is valid: rebuild it whole to check its sums.
	var p ippkt
	parseIPv4(f, &p)
	setSrc(f, &p, ip4(netip.MustParseAddr("198.18.1.2")))
	if !bytes.Equal(f[:60], r.Data) {
		t.Errorf("inline record is not the egress frame with the original source")
	}
	checkSums(t, f)
	// set-mode none: nothing captured, still forwarded.
	h.setMode(t, 1, ModeNone)
	if out, _ := h.in(0, tcpFrame(macA, macP0, ipA, ipX, "x")); out != 1 {
		t.Fatal("not forwarded in mode none")
	}
	if recs := h.drain(t); len(recs) != 0 {
		t.Errorf("mode none captured %d", len(recs))
	}
}

func (h *harness) setMode(t testing.TB, id uint32, m Mode) {
	tb := h.d.Table()
	rules := append([]Rule(nil), tb.src...)
	for i := range rules {
		if rules[i].ID == id {
			rules[i].Mode = m
		}
	}
	_, ports, _, _ := parseConfig("test.yaml", []byte(testConfig))
	h.d.Swap(buildTable(ports, rules))
	h.d.Begin(h.d.now)
}

type rec struct {
	shmring.Record
	Data []byte
}

func (h *harness) drain(t testing.TB) []rec {
	var out []rec
	for {
		r, err := h.cons.Next()
		if err != nil {
			break
		}
		out = append(out, rec{r, append([]byte(nil), r.Data...)})
	}
	h.cons.Commit()
	return out
}

var _ = binary.BigEndian
