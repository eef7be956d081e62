package fwd

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	ip6A = net.ParseIP("2001:2:0:1::2")
	ip6X = net.ParseIP("2001:2:0:1::1")
	ip6Y = net.ParseIP("2001:2:0:2::1")
	ip6B = net.ParseIP("2001:2:0:2::2")
	ip6R = net.ParseIP("2001:2:0:2::77")
)

func eth6(src, dst [6]byte) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeIPv6}
}

func ip6(src, dst net.IP, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: src, DstIP: dst}
}

// naFrame is a neighbor advertisement: ip is at mac.
func naFrame(mac [6]byte, ip net.IP, dst [6]byte) []byte {
	l3 := ip6(ip, net.ParseIP("ff02::1"), layers.IPProtocolICMPv6)
	l3.HopLimit = 255
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(136, 0)}
	icmp.SetNetworkLayerForChecksum(l3)
	return build(eth6(mac, dst), l3, icmp, &layers.ICMPv6NeighborAdvertisement{Flags: 0x20, TargetAddress: ip,
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mac[:]}}})
}

func nsFrame(mac [6]byte, src, target net.IP) []byte {
	t := target.To16()
	sn := net.IP{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]}
	l3 := ip6(src, sn, layers.IPProtocolICMPv6)
	l3.HopLimit = 255
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)}
	icmp.SetNetworkLayerForChecksum(l3)
	return build(eth6(mac, [6]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}), l3, icmp,
		&layers.ICMPv6NeighborSolicitation{TargetAddress: target,
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: mac[:]}}})
}

func tcp6Frame(srcMAC, dstMAC [6]byte, src, dst net.IP, payload string) []byte {
	return build(eth6(srcMAC, dstMAC), ip6(src, dst, layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Ack: 9, PSH: true, ACK: true, Window: 500}, gopacket.Payload(payload))
}

func udp6Frame(srcMAC, dstMAC [6]byte, src, dst net.IP, payload string) []byte {
	return build(eth6(srcMAC, dstMAC), ip6(src, dst, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 5353, DstPort: 53}, gopacket.Payload(payload))
}

func sumErrors6(f []byte) []string {
	var p ippkt
	if r := parseIPv6(f, &p); r != rOK {
		return []string{"does not parse: " + reasonNames[r]}
	}
	if p.frag || p.l4 == 0 || l4CsumOff6(p.proto) < 0 {
		return nil
	}
	if p.proto == protoUDP && be.Uint16(f[p.l4+6:]) == 0 {
		return nil
	}
	if c := csum(f[p.l4:p.end], pseudoSum6(f, &p)); c != 0 {
		return []string{fmt.Sprintf("L4 checksum wrong (residue %#04x)", c)}
	}
	return nil
}

func addrs6(f []byte) (net.IP, net.IP) { return net.IP(f[22:38]), net.IP(f[38:54]) }

func wantAddrs6(t testing.TB, f []byte, src, dst net.IP) {
	t.Helper()
	s, d := addrs6(f)
	if !s.Equal(src) || !d.Equal(dst) {
		t.Errorf("addresses %v → %v, want %v → %v", s, d, src, dst)
	}
}

func TestForwardIPv6(t *testing.T) {
	h := newHarness(t, true)
	for _, mk := range []func([6]byte, [6]byte, net.IP, net.IP, string) []byte{tcp6Frame, udp6Frame} {
		in := mk(macA, macP0, ip6A, ip6X, "hello over IPv6")
		out, f := h.in(0, in)
		if out != 1 {
			t.Fatalf("A→X: out %d (drops %v)", out, h.d.c.reasons)
		}
		wantAddrs6(t, f, ip6Y, ip6B)
		wantMACs(t, f, macP1, macB)
		if f[21] != 63 {
			t.Errorf("hop limit %d", f[21])
		}
		checkSums(t, f)
		out, f = h.in(1, mk(macB, macP1, ip6B, ip6Y, "reply"))
		if out != 0 {
			t.Fatalf("B→Y: out %d", out)
		}
		wantAddrs6(t, f, ip6X, ip6A)
		wantMACs(t, f, macP0, macA)
		checkSums(t, f)
		recs := h.drain(t)
		if len(recs) != 4 || !bytes.Equal(recs[0].Data, in) || recs[0].Rule != 3 {
			t.Fatalf("captured %d records", len(recs))
		}
	}
}

func TestIPv6ExtensionHeadersAndFragments(t *testing.T) {
	h := newHarness(t, false)
	// Hop-by-hop and destination options before UDP.
	l3 := ip6(ip6A, ip6X, layers.IPProtocolIPv6HopByHop)
	hbh := &layers.IPv6HopByHop{}
	hbh.NextHeader = layers.IPProtocolIPv6Destination
	hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
	dst := &layers.IPv6Destination{}
	dst.NextHeader = layers.IPProtocolUDP
	dst.Options = []*layers.IPv6DestinationOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
	udp := &layers.UDP{SrcPort: 1, DstPort: 2}
	udp.SetNetworkLayerForChecksum(l3)
	in := build(eth6(macA, macP0), l3, hbh, dst, udp, gopacket.Payload("behind two extension headers"))
	out, f := h.in(0, in)
	if out != 1 {
		t.Fatalf("out %d (drops %v)", out, h.d.c.reasons)
	}
	checkSums(t, f)
	wantAddrs6(t, f, ip6Y, ip6B)
	// A UDP datagram in two fragments: reassembled, its checksum is right.
	whole := udp6Frame(macA, macP0, ip6A, ip6X, string(bytes.Repeat([]byte("fragment me "), 30)))
	body := whole[54:] // UDP header and data
	var frags [][]byte
	for off := 0; off < len(body); off += 200 {
		end := min(off+200, len(body))
		fr := append([]byte(nil), whole[:54]...)
		fr[20] = ip6Fragment
		fh := make([]byte, 8)
		fh[0] = protoUDP
		fo := uint16(off)
		if end < len(body) {
			fo |= 1
		}
		be.PutUint16(fh[2:], fo)
		be.PutUint32(fh[4:], 0xabcd)
		fr = append(append(fr, fh...), body[off:end]...)
		be.PutUint16(fr[18:], uint16(len(fr)-54))
		frags = append(frags, fr)
	}
	var got []byte
	for i, fr := range frags {
		out, f := h.in(0, fr)
		if out != 1 {
			t.Fatalf("fragment %d: out %d (drops %v)", i, out, h.d.c.reasons)
		}
		wantAddrs6(t, f, ip6Y, ip6B)
		if i == 0 {
			got = append(got, f[:54]...)
		}
		got = append(got, f[62:]...)
	}
	got[20] = protoUDP
	be.PutUint16(got[18:], uint16(len(got)-54))
	checkSums(t, got)
}

func TestNDP(t *testing.T) {
	h := newHarness(t, false)
	other := [6]byte{2, 0, 0, 0, 0, 0x66}
	asker := net.ParseIP("2001:2:0:1::66")
	if out, _ := h.in(0, nsFrame(other, asker, ip6X)); out != -1 {
		t.Fatalf("NS: out %d", out)
	}
	if len(h.tx.sent) != 1 {
		t.Fatalf("sent %d frames, want one NA", len(h.tx.sent))
	}
	na := h.tx.sent[0].frame
	p := gopacket.NewPacket(na, layers.LayerTypeEthernet, gopacket.Default)
	adv, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !ok || !adv.TargetAddress.Equal(ip6X) || !adv.Solicited() || len(adv.Options) != 1 || !bytes.Equal(adv.Options[0].Data, macP0[:]) {
		t.Fatalf("not the advertisement wanted: %v", p)
	}
	wantAddrs6(t, na, ip6X, asker)
	wantMACs(t, na, macP0, other)
	checkSums(t, na)
	if n := h.d.ports[0].neigh.m[netip.MustParseAddr("2001:2:0:1::66")]; n == nil || n.mac != other {
		t.Errorf("asker not learned")
	}
	// A unicast advertisement from A to X matches rule 3's addresses but is
	// neighbor discovery, not traffic: never forwarded.
	na = naFrame(macA, ip6A, macP0)
	copy(na[38:54], ip6X)
	before := h.d.c.reasons[rOK]
	if out, _ := h.in(0, na); out != -1 || h.d.c.reasons[rOK] != before {
		t.Errorf("unicast NA forwarded")
	}
	// NS for someone else: ignored.
	h.tx.sent = nil
	h.in(0, nsFrame(other, asker, net.ParseIP("2001:2:0:1::99")))
	if len(h.tx.sent) != 0 {
		t.Errorf("answered for another address")
	}
	// Unresolved next hop: a solicitation to the solicited-node address.
	nb := h.d.ports[1].neigh.m[netip.MustParseAddr("2001:2:0:2::2")]
	nb.state, nb.tries = nIncomplete, 0
	h.in(0, tcp6Frame(macA, macP0, ip6A, ip6X, "wait"))
	if len(h.tx.sent) != 1 {
		t.Fatalf("sent %d, want one NS", len(h.tx.sent))
	}
	ns := h.tx.sent[0].frame
	p = gopacket.NewPacket(ns, layers.LayerTypeEthernet, gopacket.Default)
	sol, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation)
	if !ok || !sol.TargetAddress.Equal(ip6B) || !bytes.Equal(ns[0:6], []byte{0x33, 0x33, 0xff, 0, 0, 2}) {
		t.Fatalf("not the solicitation wanted: %v", p)
	}
	wantAddrs6(t, ns, ip6Y, net.ParseIP("ff02::1:ff00:2"))
	checkSums(t, ns)
	h.tx.sent = nil
	h.in(1, naFrame(macB, ip6B, macP1))
	if len(h.tx.sent) != 1 {
		t.Fatalf("released %d", len(h.tx.sent))
	}
	wantMACs(t, h.tx.sent[0].frame, macP1, macB)
}

func TestEcho6AndICMPv6Errors(t *testing.T) {
	h := newHarness(t, false)
	stranger := net.ParseIP("2001:2:0:1::5")
	l3 := ip6(stranger, ip6X, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
	icmp.SetNetworkLayerForChecksum(l3)
	req := build(eth6(macA, macP0), l3, icmp, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 2}, gopacket.Payload("ping6"))
	out, f := h.in(0, req)
	if out != 0 || f[54] != 129 {
		t.Fatalf("echo: out %d type %d", out, f[54])
	}
	wantAddrs6(t, f, ip6X, stranger)
	checkSums(t, f)
	for _, from := range []net.IP{ip6B, ip6R} {
		// B (or a router) says port unreachable about our UDP packet Y → B.
		sent := udp6Frame(macP1, macB, ip6Y, ip6B, "datagram")
		l3 := ip6(from, ip6Y, layers.IPProtocolICMPv6)
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(1, 4)}
		icmp.SetNetworkLayerForChecksum(l3)
		e := build(eth6(macB, macP1), l3, icmp, gopacket.Payload(append(make([]byte, 4), sent[14:]...)))
		out, f := h.in(1, e)
		if out != 0 {
			t.Fatalf("error from %v: out %d (drops %v)", from, out, h.d.c.reasons)
		}
		want := ip6X
		if from.Equal(ip6R) {
			want = ip6R
		}
		wantAddrs6(t, f, want, ip6A)
		checkSums(t, f)
		q := f[62:]
		if !net.IP(q[8:24]).Equal(ip6A) || !net.IP(q[24:40]).Equal(ip6X) {
			t.Errorf("quoted %v → %v", net.IP(q[8:24]), net.IP(q[24:40]))
		}
		qf := append(make([]byte, 14), q...)
		be.PutUint16(qf[12:], etherIPv6)
		if errs := sumErrors6(qf); len(errs) != 0 {
			t.Errorf("quoted packet: %v", errs)
		}
	}
	// A redirect (137) from B about Y → B is dropped and counted, as in IPv4.
	sent := udp6Frame(macP1, macB, ip6Y, ip6B, "datagram")
	l3 = ip6(ip6B, ip6Y, layers.IPProtocolICMPv6)
	l3.HopLimit = 255
	icmp = &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(137, 0)}
	icmp.SetNetworkLayerForChecksum(l3)
	body := append(make([]byte, 4), ip6R.To16()...) // reserved, target
	body = append(body, ip6B.To16()...)             // destination
	body = append(body, 4, 6, 0, 0, 0, 0, 0, 0)     // redirected header option
	body = append(body, sent[14:54]...)
	e := build(eth6(macB, macP1), l3, icmp, gopacket.Payload(body))
	before := h.d.c.reasons[rICMPRedirect]
	if out, _ := h.in(1, e); out != -1 || h.d.c.reasons[rICMPRedirect] != before+1 {
		t.Errorf("IPv6 redirect: out %d, icmp_redirect +%d (want -1, +1)", out, h.d.c.reasons[rICMPRedirect]-before)
	}
}

// completeL4 finishes an IPv6 checksum the sender left to an offload.
func TestCompleteL4IPv6(t *testing.T) {
	for _, f := range [][]byte{tcp6Frame(macA, macP0, ip6A, ip6X, "partial"), udp6Frame(macA, macP0, ip6A, ip6X, "partial")} {
		var p ippkt
		parseIPv6(f, &p)
		ck := p.l4 + l4CsumOff6(p.proto)
		be.PutUint16(f[ck:], 0x1234) // what a CHECKSUM_PARTIAL sender leaves
		completeL4(f)
		checkSums(t, f)
	}
}

// A frame bigger than the usual MTU (GRO on the port) on an inline rule
// is forwarded and captured, not a panic.
func TestInlineBigFrame(t *testing.T) {
	h := newHarnessRing(t, true, 8<<20)
	in := tcpFrame(macA, macP0, ipA, net.IPv4(198, 18, 1, 4).To4(), string(make([]byte, 20000)))
	if out, _ := h.in(0, in); out != 1 {
		t.Fatalf("out %d", out)
	}
	if recs := h.drain(t); len(recs) != 1 || recs[0].WireLen != uint32(len(in)) {
		t.Fatalf("records %d", len(recs))
	}
}
