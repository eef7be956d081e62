package main

// What GWLB puts around a packet, and the checks of what comes back.
//
// The frame gwlbsim sends (all big endian; RFC 8926 §3.4, §3.5):
//
//	offset size
//	  0    20  IPv4: 0x45, TOS 0, total length, id, DF, TTL 64, UDP, checksum (the
//	           kernel's), --local, --appliance
//	 20     8  UDP: the flow's source port, 6081, length, checksum 0
//	 28     8  GENEVE: version 0 and opt_len 8 (32 bytes of options), flags 0, protocol
//	           type 0x0800 or 0x86DD (the inner packet's IP version), VNI 0, reserved
//	 36    12  option class 0x0108, type 1, length 2 (words): GWLB endpoint id
//	 48    12  option class 0x0108, type 2, length 2: attachment id
//	 60     8  option class 0x0108, type 3, length 1: flow cookie
//	 68        the inner packet, from its IP header
//
// The appliance returns the UDP payload (GENEVE, options, inner packet)
// unchanged, from its address and the same UDP ports, to --local:6081.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
)

var be = binary.BigEndian

const (
	ipv4HdrLen    = 20
	udpHdrLen     = 8
	geneveUDPPort = 6081
	geneveHdrLen  = 8
	optHdrLen     = 4

	gwlbClass      = 0x0108
	typeEndpoint   = 1
	typeAttachment = 2
	typeCookie     = 3
	// optsLen is the three GWLB options with their headers.
	optsLen = 3*optHdrLen + 8 + 8 + 4
	// geneveLen is the GENEVE header and options: what the appliance must
	// return byte for byte.
	geneveLen = geneveHdrLen + optsLen
	// cookieOff is the flow cookie's place in the GENEVE header.
	cookieOff = geneveHdrLen + 2*(optHdrLen+8) + optHdrLen

	outerTTL = 64
	ipDF     = 0x4000

	// Flow source ports come from the cookie, in the ephemeral range.
	srcPortBase  = 49152
	srcPortRange = 16384

	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
)

type config struct {
	local, appliance         netip.Addr // IPv4
	endpointID, attachmentID uint64
}

// mismatch is what was wrong with a returned datagram.
type mismatch uint8

const (
	mShort   mismatch = iota // shorter than GENEVE and its options, or no inner IP packet
	mOptions                 // the GENEVE header or options differ from those sent for the flow
	mSource                  // the outer source address is not the appliance's
	mPort                    // the UDP source port is not the flow's
	mMax
)

var mismatchNames = [mMax]string{
	mShort: "short_or_not_ip", mOptions: "geneve_options_differ",
	mSource: "outer_source_not_appliance", mPort: "udp_source_port_not_the_flows",
}

// counters are written by the two loops (atomics, no pairing: they are
// only read by report after the signal, for totals).
type counters struct {
	tunRead, notIP, sent, sendErrors    atomic.Uint64
	received, delivered, tunWriteErrors atomic.Uint64
	mismatches                          [mMax]atomic.Uint64
}

// maxExamples is how many mismatches are described at exit.
const maxExamples = 8

type sim struct {
	cfg      config
	overhead int // IPv4 + UDP + GENEVE with options
	tmpl     [geneveLen]byte
	ipID     uint16 // written by toAppliance only
	c        counters

	mu       sync.Mutex // guards examples; taken only on a mismatch
	examples []string
}

func newSim(cfg config) *sim {
	s := &sim{cfg: cfg, overhead: ipv4HdrLen + udpHdrLen + geneveLen}
	t := s.tmpl[:]
	t[0] = optsLen / 4 // version 0, opt_len in words
	o := geneveHdrLen
	for _, opt := range [...]struct {
		typ  byte
		size int
		v    uint64
	}{{typeEndpoint, 8, cfg.endpointID}, {typeAttachment, 8, cfg.attachmentID}, {typeCookie, 4, 0}} {
		be.PutUint16(t[o:], gwlbClass)
		t[o+2], t[o+3] = opt.typ, byte(opt.size/4)
		if opt.size == 8 {
			be.PutUint64(t[o+4:], opt.v)
		}
		o += optHdrLen + opt.size
	}
	return s
}

// geneveHeader writes into h (geneveLen bytes) the GENEVE header and
// options gwlbsim sends with the inner packet pkt; false when pkt is not
// an IP packet.
func (s *sim) geneveHeader(h, pkt []byte) (cookie uint32, ok bool) {
	cookie, proto, ok := flowCookie(pkt)
	if !ok {
		return 0, false
	}
	copy(h, s.tmpl[:])
	be.PutUint16(h[2:], proto)
	be.PutUint32(h[cookieOff:], cookie)
	return cookie, true
}

// srcPort is the flow's UDP source port.
func srcPort(cookie uint32) uint16 { return uint16(srcPortBase + cookie%srcPortRange) }

// encap wraps the packet at buf[s.overhead:s.overhead+n] in place and
// returns the frame's length (from buf[0]).
func (s *sim) encap(buf []byte, n int) (int, bool) {
	pkt := buf[s.overhead : s.overhead+n]
	cookie, ok := s.geneveHeader(buf[ipv4HdrLen+udpHdrLen:s.overhead], pkt)
	if !ok {
		return 0, false
	}
	total := s.overhead + n
	ip := buf[:ipv4HdrLen]
	ip[0], ip[1] = 0x45, 0
	be.PutUint16(ip[2:], uint16(total))
	s.ipID++
	be.PutUint16(ip[4:], s.ipID)
	be.PutUint16(ip[6:], ipDF)
	ip[8], ip[9] = outerTTL, 17
	ip[10], ip[11] = 0, 0
	src, dst := s.cfg.local.As4(), s.cfg.appliance.As4()
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	be.PutUint16(ip[10:], ipChecksum(ip))
	udp := buf[ipv4HdrLen : ipv4HdrLen+udpHdrLen]
	be.PutUint16(udp[0:], srcPort(cookie))
	be.PutUint16(udp[2:], geneveUDPPort)
	be.PutUint16(udp[4:], uint16(total-ipv4HdrLen))
	be.PutUint16(udp[6:], 0) // as GWLB: no UDP checksum
	return total, true
}

// ipChecksum is the IPv4 header checksum (RFC 1071) of h, its checksum
// field zero. The kernel would fill it in on a raw socket too; computing it
// keeps encap's output a whole, valid packet for the tests.
func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(be.Uint16(h[i:]))
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// check verifies a datagram the appliance returned (from, the UDP
// payload) against what gwlbsim sent for the packet it carries, and
// returns that inner packet.
func (s *sim) check(from netip.AddrPort, p []byte) ([]byte, bool) {
	if len(p) <= geneveLen {
		return nil, s.mismatch(mShort, from, "%d bytes", len(p))
	}
	inner := p[geneveLen:]
	var want [geneveLen]byte
	cookie, ok := s.geneveHeader(want[:], inner)
	if !ok {
		return nil, s.mismatch(mShort, from, "inner packet not IP")
	}
	if string(want[:]) != string(p[:geneveLen]) {
		return nil, s.mismatch(mOptions, from, "GENEVE header and options %x, sent %x", p[:geneveLen], want[:])
	}
	if from.Addr().Unmap() != s.cfg.appliance {
		return nil, s.mismatch(mSource, from, "outer source %v", from.Addr())
	}
	if from.Port() != srcPort(cookie) {
		return nil, s.mismatch(mPort, from, "UDP source port %d, sent from %d", from.Port(), srcPort(cookie))
	}
	return inner, true
}

// mismatch counts m, keeps the first few descriptions, and returns false.
func (s *sim) mismatch(m mismatch, from netip.AddrPort, format string, args ...any) bool {
	if s.c.mismatches[m].Add(1) <= maxExamples {
		s.note(fmt.Sprintf("%s from %v: ", mismatchNames[m], from) + fmt.Sprintf(format, args...))
	}
	return false
}

func (s *sim) noteSendError(err error) {
	if s.c.sendErrors.Load() <= maxExamples {
		s.note("send: " + err.Error())
	}
}

func (s *sim) note(e string) {
	s.mu.Lock()
	if len(s.examples) < 4*maxExamples {
		s.examples = append(s.examples, e)
	}
	s.mu.Unlock()
}

// report prints the counters, one "name value" a line, then the examples;
// it says whether anything came back wrong.
func (s *sim) report(w io.Writer) (bad bool) {
	c := &s.c
	var total uint64
	for m := range mMax {
		total += c.mismatches[m].Load()
	}
	fmt.Fprintf(w, "tun_read %d\nnot_ip %d\nsent %d\nsend_errors %d\nreceived %d\ndelivered %d\ntun_write_errors %d\nmismatches %d\n",
		c.tunRead.Load(), c.notIP.Load(), c.sent.Load(), c.sendErrors.Load(),
		c.received.Load(), c.delivered.Load(), c.tunWriteErrors.Load(), total)
	for m := range mMax {
		fmt.Fprintf(w, "mismatch_%s %d\n", mismatchNames[m], c.mismatches[m].Load())
	}
	s.mu.Lock()
	for _, e := range s.examples {
		fmt.Fprintln(w, "example:", e)
	}
	s.mu.Unlock()
	return total > 0
}

// flowCookie is the flow's cookie: FNV-1a over the protocol and the two
// endpoints (address and port) in a fixed order, so that both directions of
// a connection get the same one, as GWLB gives them. Ports count for TCP,
// UDP, SCTP and UDP-Lite when the packet is not a fragment (IPv6: when the
// L4 header follows the fixed header); other packets are keyed by
// addresses and protocol alone, so that all the fragments of a datagram
// share a cookie. proto is the GENEVE protocol type for the packet.
func flowCookie(p []byte) (cookie uint32, proto uint16, ok bool) {
	var a, b []byte
	var l4 int
	var next byte
	switch {
	case len(p) >= 20 && p[0]>>4 == 4:
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || len(p) < ihl {
			return 0, 0, false
		}
		a, b, next, proto = p[12:16], p[16:20], p[9], etherIPv4
		if be.Uint16(p[6:])&0x3fff == 0 { // neither MF nor an offset
			l4 = ihl
		}
	case len(p) >= 40 && p[0]>>4 == 6:
		a, b, next, proto, l4 = p[8:24], p[24:40], p[6], etherIPv6, 40
	default:
		return 0, 0, false
	}
	var pa, pb uint16
	switch next {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite
		if l4 != 0 && len(p) >= l4+4 {
			pa, pb = be.Uint16(p[l4:]), be.Uint16(p[l4+2:])
		}
	}
	if string(a) > string(b) || string(a) == string(b) && pa > pb {
		a, b, pa, pb = b, a, pb, pa
	}
	h := uint32(2166136261)
	mix := func(c byte) { h = (h ^ uint32(c)) * 16777619 }
	mix(next)
	for _, c := range a {
		mix(c)
	}
	mix(byte(pa >> 8))
	mix(byte(pa))
	for _, c := range b {
		mix(c)
	}
	mix(byte(pb >> 8))
	mix(byte(pb))
	return h, proto, true
}
