package fwd

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// The tunnel tests' addresses: GWLB 198.18.100.1 sends to the appliance
// 198.18.100.2; inside, client 198.18.0.2 talks to server 198.18.2.2
// (2001:2::2 to 2001:2:0:2::2 over IPv6). Traffic Mirroring sends from
// 198.18.101.1 (2001:2:0:101::1) to the collector 198.18.101.2
// (2001:2:0:101::2).
var (
	tunGWLB    = net.IPv4(198, 18, 100, 1).To4()
	tunApp     = net.IPv4(198, 18, 100, 2).To4()
	tunClient  = net.IPv4(198, 18, 0, 2).To4()
	tunServer  = net.IPv4(198, 18, 2, 2).To4()
	tunClient6 = net.ParseIP("2001:2::2")
	tunServer6 = net.ParseIP("2001:2:0:2::2")
	tunMirror  = net.IPv4(198, 18, 101, 1).To4()
	tunColl    = net.IPv4(198, 18, 101, 2).To4()
	tunMirror6 = net.ParseIP("2001:2:0:101::1")
	tunColl6   = net.ParseIP("2001:2:0:101::2")
	macRouter  = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	macApp     = [6]byte{0x02, 0, 0, 0, 0, 0x02}
)

const (
	testEndpointID   = 0x0123456789abcdef
	testAttachmentID = 0xfedcba9876543210
	testCookie       = 0x5eed1234
)

// gnvOpt is one GENEVE option as a test writes it.
type gnvOpt struct {
	class uint16
	typ   uint8
	data  []byte
}

func u64(v uint64) []byte { return be.AppendUint64(nil, v) }
func u32(v uint32) []byte { return be.AppendUint32(nil, v) }

// gwlbTriple is the three GWLB options in GWLB's order.
func gwlbTriple() []gnvOpt {
	return []gnvOpt{
		{gwlbOptClass, gwlbOptEndpoint, u64(testEndpointID)},
		{gwlbOptClass, gwlbOptAttachment, u64(testAttachmentID)},
		{gwlbOptClass, gwlbOptCookie, u32(testCookie)},
	}
}

// geneveHeader writes a GENEVE header and its options by hand: gopacket
// v1.1.19's layers.Geneve decodes but cannot serialize (and reads the
// version from one bit, not two), so it serves only as a second reader.
func geneveHeader(proto uint16, flags byte, opts []gnvOpt) []byte {
	b := []byte{0, flags, byte(proto >> 8), byte(proto), 0, 0, 0, 0}
	for _, o := range opts {
		b = append(b, byte(o.class>>8), byte(o.class), o.typ, byte(len(o.data)/4))
		b = append(b, o.data...)
	}
	b[0] = byte((len(b) - geneveHdrLen) / 4)
	return b
}

// innerTCP4 and innerTCP6 are inner packets as GWLB carries them: from the
// L3 header on.
func innerTCP4(payload string) []byte {
	return build(ip(tunClient, tunServer, layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Ack: 9, ACK: true, PSH: true, Window: 500},
		gopacket.Payload(payload))
}

func innerTCP6(payload string) []byte {
	return build(&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: tunClient6, DstIP: tunServer6},
		&layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 7, Ack: 9, ACK: true, Window: 500},
		gopacket.Payload(payload))
}

// geneveFrame is a GWLB frame from the router's MAC to the appliance: the
// UDP checksum is 0 as GWLB sends it, unless udpSum.
func geneveFrame(gnv, inner []byte, udpSum bool) []byte {
	f := build(eth(macRouter, macApp), ip(tunGWLB, tunApp, layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 51234, DstPort: geneveUDPPort}, gopacket.Payload(append(gnv, inner...)))
	if !udpSum {
		f[etherHdrLen+20+6], f[etherHdrLen+20+7] = 0, 0
	}
	return f
}

// mirrorFrame is a Traffic Mirroring frame carrying inner (an Ethernet
// frame), over IPv4 or IPv6.
func mirrorFrame(v6 bool, vni uint32, inner []byte) []byte {
	vx := &layers.VXLAN{ValidIDFlag: true, VNI: vni}
	udp := &layers.UDP{SrcPort: 61000, DstPort: vxlanUDPPort}
	if v6 {
		return build(&layers.Ethernet{SrcMAC: macRouter[:], DstMAC: macApp[:], EthernetType: layers.EthernetTypeIPv6},
			&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: tunMirror6, DstIP: tunColl6},
			udp, vx, gopacket.Payload(inner))
	}
	return build(eth(macRouter, macApp), ip(tunMirror, tunColl, layers.IPProtocolUDP), udp, vx, gopacket.Payload(inner))
}

// Offsets in a frame geneveFrame built (outer IPv4 without options).
const (
	tgIP  = etherHdrLen
	tgUDP = tgIP + 20
	tgHdr = tgUDP + udpHdrLen
	tgOpt = tgHdr + geneveHdrLen
)

type geneveCase struct {
	name  string
	frame []byte
	want  tunResult
	// for accepted frames
	unknown int
	inner   []byte
	inner6  bool
}

// geneveCases are the table: every refusal and the accepted shapes.
func geneveCases() []geneveCase {
	in4, in6 := innerTCP4("hello through the load balancer"), innerTCP6("hello over IPv6")
	inBig := innerTCP4(strings.Repeat("j", 8500-40)) // GWLB's MTU: a frame of 14 + 8568 bytes
	good := func() []byte { return geneveFrame(geneveHeader(etherIPv4, 0, gwlbTriple()), in4, false) }
	mut := func(m func(f []byte) []byte) []byte { return m(good()) }
	with := func(opts ...gnvOpt) []byte { return geneveFrame(geneveHeader(etherIPv4, 0, opts), in4, false) }
	tr := gwlbTriple()
	unknownOpt := gnvOpt{0xffff, 0x10, []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	emptyOpt := gnvOpt{0x0103, 0x20, nil}
	withIPOpts := build(eth(macRouter, macApp),
		&layers.IPv4{Version: 4, TTL: 9, Protocol: layers.IPProtocolUDP, SrcIP: tunGWLB, DstIP: tunApp,
			Options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}},
		&layers.UDP{SrcPort: 51234, DstPort: geneveUDPPort},
		gopacket.Payload(append(geneveHeader(etherIPv4, 0, tr), in4...)))
	return []geneveCase{
		{name: "ipv4 inner", frame: good(), inner: in4},
		{name: "ipv6 inner", frame: geneveFrame(geneveHeader(etherIPv6, 0, tr), in6, false), inner: in6, inner6: true},
		{name: "udp checksum set", frame: geneveFrame(geneveHeader(etherIPv4, 0, tr), in4, true), inner: in4},
		{name: "options in another order", frame: with(tr[2], tr[0], tr[1]), inner: in4},
		{name: "unknown options echoed", frame: with(unknownOpt, tr[0], emptyOpt, tr[1], tr[2]), unknown: 2, inner: in4},
		{name: "critical gwlb options", frame: with(gnvOpt{gwlbOptClass, gwlbOptEndpoint | geneveOptCritical, tr[0].data},
			tr[1], gnvOpt{gwlbOptClass, gwlbOptCookie | geneveOptCritical, tr[2].data}), inner: in4},
		{name: "outer ip options", frame: withIPOpts, inner: in4},
		{name: "ethernet padding", frame: append(good(), 0, 0, 0, 0), inner: in4},
		{name: "vni set", frame: mut(func(f []byte) []byte { copy(f[tgHdr+geneveVNIOff:], []byte{0x12, 0x34, 0x56}); return f }), inner: in4},
		{name: "gwlb mtu", frame: geneveFrame(geneveHeader(etherIPv4, 0, tr), inBig, false), inner: inBig},

		{name: "empty", frame: nil, want: tunShort},
		{name: "short ethernet", frame: good()[:10], want: tunShort},
		{name: "short ip", frame: good()[:tgIP+10], want: tunShort},
		{name: "arp", frame: mut(func(f []byte) []byte { f[12], f[13] = 0x08, 0x06; return f }), want: tunNotIP},
		{name: "outer ipv6", frame: mut(func(f []byte) []byte { f[12], f[13] = 0x86, 0xdd; return f }), want: tunNotIP},
		{name: "ip version 5", frame: mut(func(f []byte) []byte { f[tgIP] = 0x55; return f }), want: tunBadIPHeader},
		{name: "ip header length 16", frame: mut(func(f []byte) []byte { f[tgIP] = 0x44; return f }), want: tunBadIPHeader},
		{name: "ip length beyond frame", frame: good()[:len(good())-1], want: tunBadIPLength},
		{name: "ip more fragments", frame: mut(func(f []byte) []byte { f[tgIP+6] |= 0x20; return f }), want: tunFragment},
		{name: "ip later fragment", frame: mut(func(f []byte) []byte { f[tgIP+7] = 1; return f }), want: tunFragment},
		{name: "tcp", frame: mut(func(f []byte) []byte { f[tgIP+9] = protoTCP; return f }), want: tunNotUDP},
		{name: "udp header cut", frame: mut(func(f []byte) []byte { be.PutUint16(f[tgIP+2:], 24); return f[:tgIP+24] }), want: tunBadUDPLength},
		{name: "udp length 4", frame: mut(func(f []byte) []byte { be.PutUint16(f[tgUDP+4:], 4); return f }), want: tunBadUDPLength},
		{name: "udp length beyond ip", frame: mut(func(f []byte) []byte { be.PutUint16(f[tgUDP+4:], be.Uint16(f[tgUDP+4:])+1); return f }), want: tunBadUDPLength},
		{name: "port 6082", frame: mut(func(f []byte) []byte { be.PutUint16(f[tgUDP+2:], 6082); return f }), want: tunWrongPort},
		{name: "vxlan port", frame: mut(func(f []byte) []byte { be.PutUint16(f[tgUDP+2:], vxlanUDPPort); return f }), want: tunWrongPort},
		{name: "geneve header cut", frame: mut(func(f []byte) []byte { be.PutUint16(f[tgUDP+4:], udpHdrLen+7); return f }), want: tunShort},
		{name: "geneve version 1", frame: mut(func(f []byte) []byte { f[tgHdr] |= 0x40; return f }), want: tunGeneveVersion},
		{name: "geneve version 2", frame: mut(func(f []byte) []byte { f[tgHdr] |= 0x80; return f }), want: tunGeneveVersion},
		{name: "oam", frame: geneveFrame(geneveHeader(etherIPv4, geneveFlagO, tr), in4, false), want: tunGeneveOAM},
		{name: "opt_len beyond datagram", frame: mut(func(f []byte) []byte { f[tgHdr] = 63; return f }), want: tunGeneveOptLen},
		{name: "opt_len beyond udp", frame: mut(func(f []byte) []byte {
			be.PutUint16(f[tgUDP+4:], udpHdrLen+geneveHdrLen+8)
			return f
		}), want: tunGeneveOptLen},
		{name: "option beyond opt_len", frame: mut(func(f []byte) []byte { f[tgHdr]--; return f }), want: tunGeneveOptLen},
		{name: "option data length beyond opt_len", frame: mut(func(f []byte) []byte { f[tgOpt+3] = 31; return f }), want: tunGeneveOptLen},
		{name: "protocol transparent ethernet", frame: geneveFrame(geneveHeader(0x6558, 0, tr), in4, false), want: tunGeneveProtocol},
		{name: "unknown critical option", frame: with(tr[0], tr[1], tr[2], gnvOpt{0x0103, 0x85, []byte{0, 0, 0, 0}}), want: tunGeneveCritical},
		{name: "critical class 0x0108 type 9", frame: with(tr[0], tr[1], tr[2], gnvOpt{gwlbOptClass, 0x89, nil}), want: tunGeneveCritical},
		{name: "no options", frame: with(), want: tunGWLBMissing},
		{name: "no cookie", frame: with(tr[0], tr[1]), want: tunGWLBMissing},
		{name: "no endpoint id", frame: with(unknownOpt, tr[1], tr[2]), want: tunGWLBMissing},
		{name: "cookie twice", frame: with(tr[0], tr[1], tr[2], tr[2]), want: tunGWLBDuplicate},
		{name: "endpoint id twice", frame: with(tr[0], tr[0], tr[1], tr[2]), want: tunGWLBDuplicate},
		{name: "cookie class 0x0109", frame: with(tr[0], tr[1], gnvOpt{0x0109, gwlbOptCookie, tr[2].data}), want: tunGWLBWrongClass},
		{name: "all under class 0x0000", frame: with(gnvOpt{0, 1, tr[0].data}, gnvOpt{0, 2, tr[1].data}, gnvOpt{0, 3, tr[2].data}), want: tunGWLBWrongClass},
		{name: "endpoint id 4 bytes", frame: with(gnvOpt{gwlbOptClass, gwlbOptEndpoint, u32(1)}, tr[1], tr[2]), want: tunGWLBBadLength},
		{name: "attachment id 12 bytes", frame: with(tr[0], gnvOpt{gwlbOptClass, gwlbOptAttachment, make([]byte, 12)}, tr[2]), want: tunGWLBBadLength},
		{name: "cookie 8 bytes", frame: with(tr[0], tr[1], gnvOpt{gwlbOptClass, gwlbOptCookie, u64(1)}), want: tunGWLBBadLength},
		{name: "ipv6 type, ipv4 inner", frame: geneveFrame(geneveHeader(etherIPv6, 0, tr), in4, false), want: tunInnerVersion},
		{name: "no inner packet", frame: geneveFrame(geneveHeader(etherIPv4, 0, tr), nil, false), want: tunInnerVersion},
	}
}

func TestParseGeneve(t *testing.T) {
	for _, c := range geneveCases() {
		t.Run(c.name, func(t *testing.T) {
			var g geneveInfo
			if got := parseGeneve(c.frame, &g); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			if c.want != tunOK {
				return
			}
			if g.endpointID != testEndpointID || g.attachmentID != testAttachmentID || g.flowCookie != testCookie {
				t.Errorf("got triple %#x %#x %#x, want %#x %#x %#x", g.endpointID, g.attachmentID, g.flowCookie,
					uint64(testEndpointID), uint64(testAttachmentID), testCookie)
			}
			if g.unknown != c.unknown {
				t.Errorf("got %d unknown options, want %d", g.unknown, c.unknown)
			}
			if g.inner6 != c.inner6 {
				t.Errorf("got inner6 %v, want %v", g.inner6, c.inner6)
			}
			if got := c.frame[g.inner : g.inner+g.innerLen()]; !bytes.Equal(got, c.inner) {
				t.Errorf("got inner packet\n%x\nwant\n%x", got, c.inner)
			}
			checkGopacketGeneve(t, c.frame, &g)
		})
	}
}

// checkGopacketGeneve reads the frame with gopacket's decoders and checks
// that they see the options and the inner packet where parseGeneve does.
func checkGopacketGeneve(t *testing.T, f []byte, g *geneveInfo) {
	t.Helper()
	pkt := gopacket.NewPacket(f, layers.LinkTypeEthernet, gopacket.Default)
	gl, ok := pkt.Layer(layers.LayerTypeGeneve).(*layers.Geneve)
	if !ok {
		t.Fatalf("gopacket finds no GENEVE layer: %v", pkt.ErrorLayer())
	}
	if len(gl.Options) != 3+g.unknown {
		t.Errorf("gopacket: %d options, want %d", len(gl.Options), 3+g.unknown)
	}
	if got := len(f) - len(gl.LayerPayload()); got != g.inner && g.end == len(f) {
		t.Errorf("gopacket: inner packet at %d, parseGeneve says %d", got, g.inner)
	}
	want := layers.LayerTypeIPv4
	if g.inner6 {
		want = layers.LayerTypeIPv6
	}
	if gl.NextLayerType() != want {
		t.Errorf("gopacket: inner %v, want %v", gl.NextLayerType(), want)
	}
}

// TestGeneveReturn checks the round trip: parse, return, parse again gives
// the same GENEVE header, options and inner packet, swapped outer
// addresses and MACs, the same ports, a fresh TTL and right checksums.
func TestGeneveReturn(t *testing.T) {
	for _, c := range geneveCases() {
		if c.want != tunOK {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var g, r geneveInfo
			if res := parseGeneve(c.frame, &g); res != tunOK {
				t.Fatal(res)
			}
			f := bytes.Clone(c.frame)
			geneveReturn(f, &g)
			if res := parseGeneve(f, &r); res != tunOK {
				t.Fatalf("returned frame refused: %v", res)
			}
			if r != g {
				t.Errorf("parsed return %+v, want %+v", r, g)
			}
			if !bytes.Equal(f[g.udp:], c.frame[g.udp:]) {
				t.Errorf("UDP datagram (ports, checksum, GENEVE, options, inner) changed")
			}
			if !bytes.Equal(f[0:6], c.frame[6:12]) || !bytes.Equal(f[6:12], c.frame[0:6]) {
				t.Errorf("MACs %x %x not swapped from %x %x", f[0:6], f[6:12], c.frame[0:6], c.frame[6:12])
			}
			if !bytes.Equal(f[g.ip+12:g.ip+16], c.frame[g.ip+16:g.ip+20]) || !bytes.Equal(f[g.ip+16:g.ip+20], c.frame[g.ip+12:g.ip+16]) {
				t.Errorf("outer addresses not swapped")
			}
			if f[g.ip+8] != geneveReturnTTL {
				t.Errorf("got TTL %d, want %d", f[g.ip+8], geneveReturnTTL)
			}
			checkSums(t, f)
			if wasZero := be.Uint16(c.frame[g.udp+6:]) == 0; wasZero != (be.Uint16(f[g.udp+6:]) == 0) {
				t.Errorf("UDP checksum %#04x from %#04x", be.Uint16(f[g.udp+6:]), be.Uint16(c.frame[g.udp+6:]))
			}
			// Back again: the original frame but for the TTL (and its checksum).
			geneveReturn(f, &r)
			f[g.ip+8] = c.frame[g.ip+8]
			copy(f[g.ip+10:g.ip+12], c.frame[g.ip+10:g.ip+12])
			if !bytes.Equal(f, c.frame) {
				t.Errorf("returned twice:\n%x\nwant\n%x", f, c.frame)
			}
		})
	}
}

type vxlanCase struct {
	name      string
	frame     []byte
	want      tunResult
	vni       uint32
	inner     []byte // the inner frame as carried
	origLen   int
	truncated bool
}

func vxlanCases() []vxlanCase {
	tcp4 := tcpFrame(macA, macB, tunClient, tunServer, strings.Repeat("mirrored ", 100))
	tcp6 := build(&layers.Ethernet{SrcMAC: macA[:], DstMAC: macB[:], EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: tunClient6, DstIP: tunServer6},
		&layers.UDP{SrcPort: 5000, DstPort: 53}, gopacket.Payload(strings.Repeat("six ", 50)))
	small := udpFrame(macA, macB, tunClient, tunServer, "x") // 43 bytes of Ethernet, padded to 60 on the wire
	padded := append(bytes.Clone(small), make([]byte, 60-len(small))...)
	arp := arpFrame(1, macA, tunClient, [6]byte{}, tunServer)
	good := func() []byte { return mirrorFrame(false, 4242, tcp4) }
	const h = etherHdrLen + 20 + udpHdrLen // VXLAN header in an IPv4 frame
	return []vxlanCase{
		{name: "ipv4 tcp", frame: good(), vni: 4242, inner: tcp4, origLen: len(tcp4)},
		{name: "outer ipv6", frame: mirrorFrame(true, 0xffffff, tcp4), vni: 0xffffff, inner: tcp4, origLen: len(tcp4)},
		{name: "ipv6 udp", frame: mirrorFrame(false, 1, tcp6), vni: 1, inner: tcp6, origLen: len(tcp6)},
		{name: "truncated ipv4", frame: mirrorFrame(false, 7, tcp4[:100]), vni: 7, inner: tcp4[:100], origLen: len(tcp4), truncated: true},
		{name: "truncated ipv6", frame: mirrorFrame(false, 7, tcp6[:60]), vni: 7, inner: tcp6[:60], origLen: len(tcp6), truncated: true},
		{name: "truncated to ethernet", frame: mirrorFrame(false, 7, tcp4[:16]), vni: 7, inner: tcp4[:16], origLen: 16},
		{name: "padded ipv4", frame: mirrorFrame(false, 9, padded), vni: 9, inner: padded, origLen: 60},
		{name: "arp", frame: mirrorFrame(false, 3, arp), vni: 3, inner: arp, origLen: len(arp)},
		{name: "vni 0", frame: mirrorFrame(false, 0, tcp4), vni: 0, inner: tcp4, origLen: len(tcp4)},

		{name: "short", frame: good()[:20], want: tunShort},
		{name: "arp outer", frame: func() []byte { f := good(); f[12], f[13] = 0x08, 0x06; return f }(), want: tunNotIP},
		{name: "udp port 6081", frame: func() []byte { f := good(); be.PutUint16(f[etherHdrLen+20+2:], geneveUDPPort); return f }(), want: tunWrongPort},
		{name: "outer fragment", frame: func() []byte { f := good(); f[etherHdrLen+6] |= 0x20; return f }(), want: tunFragment},
		{name: "no I flag", frame: func() []byte { f := good(); f[h] = 0; return f }(), want: tunVXLANFlags},
		{name: "reserved flags ignored", frame: func() []byte { f := good(); f[h] = 0xff; return f }(), vni: 4242, inner: tcp4, origLen: len(tcp4)},
		{name: "vxlan header cut", frame: mirrorFrame(false, 1, nil)[: h+4 : h+4], want: tunBadIPLength},
		{name: "vxlan header cut in udp", frame: func() []byte { f := good(); be.PutUint16(f[etherHdrLen+20+4:], udpHdrLen+4); return f }(), want: tunShort},
		{name: "inner shorter than ethernet", frame: mirrorFrame(false, 1, tcp4[:13]), want: tunVXLANInner},
	}
}

func TestParseVXLAN(t *testing.T) {
	for _, c := range vxlanCases() {
		t.Run(c.name, func(t *testing.T) {
			var v vxlanInfo
			if got := parseVXLAN(c.frame, &v); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			if c.want != tunOK {
				return
			}
			if v.vni != c.vni || v.origLen != c.origLen || v.truncated != c.truncated {
				t.Errorf("got vni %d origLen %d truncated %v, want %d %d %v", v.vni, v.origLen, v.truncated, c.vni, c.origLen, c.truncated)
			}
			if got := c.frame[v.inner : v.inner+v.innerLen()]; !bytes.Equal(got, c.inner) {
				t.Errorf("got inner frame\n%x\nwant\n%x", got, c.inner)
			}
			pkt := gopacket.NewPacket(c.frame, layers.LinkTypeEthernet, gopacket.Default)
			vl, ok := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
			if !ok {
				t.Fatalf("gopacket finds no VXLAN layer")
			}
			if vl.VNI != v.vni || !bytes.Equal(vl.LayerPayload(), c.inner) {
				t.Errorf("gopacket: VNI %d, inner %x", vl.VNI, vl.LayerPayload())
			}
		})
	}
}

// TestTunnelsAgainstTshark writes the accepted frames, GENEVE ones before
// and after geneveReturn, to a pcap and checks that Wireshark's dissectors
// read the same options and option data, addresses, ports and VNIs as the
// parsers, and find every IPv4 checksum good.
func TestTunnelsAgainstTshark(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed (apt-get install tshark): the frames are not checked against Wireshark's dissectors")
	}
	name := filepath.Join(t.TempDir(), "tunnels.pcap")
	fh, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(fh)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	// want holds, per frame, its case's name and the tshark fields below
	// (all of them for GENEVE, the ports and VNI for VXLAN).
	type row struct {
		name   string
		fields []string
	}
	var want []row
	add := func(f []byte, r row) {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(len(want))), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	fields := []string{"geneve.option.class", "geneve.option.type", "geneve.option.unknown.data",
		"ip.src", "ip.dst", "ipv6.src", "udp.srcport", "udp.dstport", "vxlan.vni", "ip.checksum.status",
		"geneve.proto_type", "geneve.vni"}
	for _, c := range geneveCases() {
		if c.want != tunOK {
			continue
		}
		var g geneveInfo
		parseGeneve(c.frame, &g)
		ret := bytes.Clone(c.frame)
		geneveReturn(ret, &g)
		for _, f := range [][]byte{c.frame, ret} {
			var classes, types, data []string
			for o := g.hdr + geneveHdrLen; o < g.inner; {
				n := int(f[o+geneveOptLenOff]&geneveOptLenBits) * 4
				classes = append(classes, fmt.Sprintf("0x%04x", be.Uint16(f[o:])))
				types = append(types, fmt.Sprintf("0x%02x", f[o+geneveOptTypeOff]))
				d := hex.EncodeToString(f[o+4 : o+4+n])
				if n == 0 {
					d = "<MISSING>" // how tshark aggregates an option without data
				}
				data = append(data, d)
				o += geneveOptHdrLen + n
			}
			// The inner packet is TCP from the client to the server.
			src, dst := net.IP(f[g.ip+12:g.ip+16]).String(), net.IP(f[g.ip+16:g.ip+20]).String()
			src6, sum := "", "1,1"
			if g.inner6 {
				src6, sum = tunClient6.String(), "1"
			} else {
				src, dst = src+","+tunClient.String(), dst+","+tunServer.String()
			}
			add(f, row{c.name, []string{strings.Join(classes, ","), strings.Join(types, ","), strings.Join(data, ","),
				src, dst, src6, fmt.Sprint(be.Uint16(f[g.udp:])), fmt.Sprint(geneveUDPPort), "", sum,
				fmt.Sprintf("0x%04x", be.Uint16(f[g.hdr+geneveProtoOff:])), fmt.Sprintf("0x%06x", g.vni)}})
		}
	}
	for _, c := range vxlanCases() {
		if c.want != tunOK {
			continue
		}
		var v vxlanInfo
		parseVXLAN(c.frame, &v)
		add(c.frame, row{c.name, []string{6: fmt.Sprint(be.Uint16(c.frame[v.udp:])), 7: fmt.Sprint(vxlanUDPPort), 8: fmt.Sprint(v.vni)}})
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	args := []string{"-r", name, "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=;", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("tshark read %d frames, want %d", len(lines), len(want))
	}
	for i, line := range lines {
		got, w := strings.Split(line, ";"), want[i]
		for j, field := range fields {
			gj := got[j]
			if w.fields[0] == "" { // VXLAN: the outer ports (first of the list) and the VNI
				if j < 6 || j >= 9 {
					continue
				}
				gj, _, _ = strings.Cut(gj, ",")
			}
			if gj != w.fields[j] {
				t.Errorf("%s (frame %d): tshark %s %q, want %q", w.name, i+1, field, gj, w.fields[j])
			}
		}
	}
}

// FuzzGeneve: no panic, offsets inside the frame and in order, and the
// return touches only the Ethernet and outer IP headers' bytes it owns.
func FuzzGeneve(f *testing.F) {
	for _, c := range geneveCases() {
		f.Add(c.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var g geneveInfo
		if parseGeneve(frame, &g) != tunOK {
			return
		}
		if len(frame) > etherHdrLen+gwlbOverhead && g.unknown == 0 && g.inner != etherHdrLen+gwlbOverhead && g.ip+20 == g.udp {
			t.Fatalf("inner packet at %d with the triple alone, want %d", g.inner, etherHdrLen+gwlbOverhead)
		}
		if !(etherHdrLen <= g.ip && g.ip+20 <= g.udp && g.udp+udpHdrLen <= g.hdr && g.hdr+geneveHdrLen <= g.inner &&
			g.inner < g.end && g.end <= len(frame)) {
			t.Fatalf("offsets out of order: %+v, frame %d bytes", g, len(frame))
		}
		ret := bytes.Clone(frame)
		geneveReturn(ret, &g)
		for i := range ret {
			changed := ret[i] != frame[i]
			owned := i < 12 || i == g.ip+8 || i == g.ip+10 || i == g.ip+11 || (i >= g.ip+12 && i < g.ip+20)
			if changed && !owned {
				t.Fatalf("return changed byte %d", i)
			}
		}
		var r geneveInfo
		if res := parseGeneve(ret, &r); res != tunOK || r != g {
			t.Fatalf("returned frame parses as %v %+v, want %+v", res, r, g)
		}
	})
}

// FuzzVXLAN: no panic, offsets inside the frame, the original length never
// below the bytes present.
func FuzzVXLAN(f *testing.F) {
	for _, c := range vxlanCases() {
		f.Add(c.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var v vxlanInfo
		if parseVXLAN(frame, &v) != tunOK {
			return
		}
		if !(etherHdrLen <= v.ip && v.ip < v.udp && v.udp+udpHdrLen <= v.hdr && v.hdr+vxlanHdrLen == v.inner &&
			v.inner+etherHdrLen <= v.end && v.end <= len(frame)) {
			t.Fatalf("offsets out of order: %+v, frame %d bytes", v, len(frame))
		}
		if v.origLen < v.end-v.inner || v.truncated != (v.origLen > v.end-v.inner) {
			t.Fatalf("origLen %d, truncated %v, %d bytes present", v.origLen, v.truncated, v.end-v.inner)
		}
	})
}

// BenchmarkGeneve is parseGeneve and geneveReturn on one GWLB frame
// carrying a 64-byte TCP packet, as the datapath would run them: 0 allocs.
func BenchmarkGeneve(b *testing.B) {
	f := geneveFrame(geneveHeader(etherIPv4, 0, gwlbTriple()), innerTCP4(strings.Repeat("x", 24)), false)
	var g geneveInfo
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if parseGeneve(f, &g) != tunOK {
			b.Fatal("refused")
		}
		geneveReturn(f, &g)
	}
}

// BenchmarkVXLAN is parseVXLAN on a mirrored 64-byte TCP frame.
func BenchmarkVXLAN(b *testing.B) {
	f := mirrorFrame(false, 4242, tcpFrame(macA, macB, tunClient, tunServer, "0123456789"))
	var v vxlanInfo
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if parseVXLAN(f, &v) != tunOK {
			b.Fatal("refused")
		}
	}
}
