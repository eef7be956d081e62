package fwd

// Cloud intake: the two tunnels a cloud hands packets to an appliance in.
//
// AWS Gateway Load Balancer (GWLB) sends every packet of a flow it balances
// to the appliance inside GENEVE, and takes it back from the appliance the
// same way; the appliance is a bump in the wire that answers each packet it
// keeps with the same packet, its outer IP addresses swapped. VPC Traffic
// Mirroring sends a copy of each packet inside VXLAN and expects nothing
// back. The parsers here find what the datapath needs in such a frame
// (the tunnel's identifiers and the inner packet's place) with the same
// discipline as packet.go: offsets from the frame's start, every length
// checked against the bytes held, no allocation, no logging, refusals as a
// typed result the datapath counts.
//
// GENEVE (RFC 8926 §3.4, §3.5), as GWLB sends it: Ethernet, IPv4 (never
// IPv6, even for IPv6 clients), UDP to port 6081, then, all big endian:
//
//	GENEVE header, 8 bytes, at g.hdr:
//	  0  1  bits 7-6 version (0), bits 5-0 opt_len: the options' length in 4-byte words
//	  1  1  bit 7 O (OAM: a control message, not a packet), bit 6 C (a critical option
//	        is present), bits 5-0 reserved
//	  2  2  protocol type: an EtherType; GWLB: 0x0800 (IPv4) or 0x86DD (IPv6), the inner
//	        packet starts at its L3 header (no Ethernet header)
//	  4  3  VNI (GWLB: 0)
//	  7  1  reserved
//	options, opt_len*4 bytes from g.hdr+8, each:
//	  0  2  option class
//	  2  1  type; bit 7 is the critical bit (an endpoint that does not know the
//	        option must drop the packet, §3.5.1)
//	  3  1  bits 7-5 reserved, bits 4-0 length of the data in 4-byte words
//	  4  n  data, length*4 bytes
//	inner packet, from g.hdr+8+opt_len*4 to the UDP datagram's end.
//
//	GWLB options (class 0x0108, all three on every packet, in any order):
//	  type 1  GWLB endpoint id     8 bytes
//	  type 2  attachment id        8 bytes
//	  type 3  flow cookie          4 bytes
//
// With no other option, the overhead is 20 (IPv4) + 8 (UDP) + 8 + 3*4 +
// 8+8+4 = 68 bytes; GWLB's MTU is 8500, so an appliance's port takes frames
// of 8568 bytes and more (plus 14 of Ethernet). Options other than the
// triple are echoed unchanged; GWLB may add some later.
//
// VXLAN (RFC 7348 §5), as Traffic Mirroring sends it: Ethernet, IPv4 or
// IPv6, UDP to port 4789, then:
//
//	VXLAN header, 8 bytes, at v.hdr:
//	  0  1  flags: bit 3 (0x08) I, the VNI is valid (must be 1); the others reserved,
//	        ignored on receipt
//	  1  3  reserved
//	  4  3  VNI: the mirror session's virtual network id
//	  7  1  reserved
//	inner Ethernet frame (no FCS), from v.hdr+8 to the UDP datagram's end.
//
// A mirror session may truncate the inner frame (its packet length
// setting); the mirror does not fix the inner headers then, so the inner
// IP header still says how long the packet was, and parseVXLAN reports that
// as the inner frame's original length (what a pcap record's wire length
// should say).

const (
	udpHdrLen = 8

	geneveUDPPort    = 6081
	geneveHdrLen     = 8
	geneveVersionOff = 0 // version (bits 7-6) and opt_len (bits 5-0)
	geneveFlagsOff   = 1 // O (bit 7), C (bit 6)
	geneveProtoOff   = 2
	geneveVNIOff     = 4
	geneveFlagO      = 0x80
	geneveFlagC      = 0x40
	geneveOptLenMask = 0x3f

	geneveOptHdrLen   = 4
	geneveOptClassOff = 0
	geneveOptTypeOff  = 2
	geneveOptLenOff   = 3
	geneveOptCritical = 0x80 // in the type byte
	geneveOptLenBits  = 0x1f // in the length byte

	gwlbOptClass      = 0x0108
	gwlbOptEndpoint   = 1 // GWLB endpoint id, 8 bytes
	gwlbOptAttachment = 2 // attachment id, 8 bytes
	gwlbOptCookie     = 3 // flow cookie, 4 bytes

	// gwlbOverhead is what GWLB adds to a packet: IPv4, UDP, GENEVE, the triple.
	gwlbOverhead = 20 + udpHdrLen + geneveHdrLen + 3*geneveOptHdrLen + 8 + 8 + 4 // 68

	// geneveReturnTTL is the outer TTL of a returned frame. The outer
	// datagram ends at the appliance; the return is a new datagram the
	// appliance originates (as the kernel would with a UDP socket), so it
	// starts with a fresh TTL instead of the received one less one: a
	// decrement would let a GWLB a few hops away, whose packets arrive with
	// a low TTL, see its returns die on the way back.
	geneveReturnTTL = 64

	vxlanUDPPort = 4789
	vxlanHdrLen  = 8
	vxlanFlagI   = 0x08 // in byte 0
	vxlanVNIOff  = 4
)

// tunResult is why a tunnel frame was refused (tunOK: it was not). Each has
// a name for its counter.
type tunResult uint8

const (
	tunOK             tunResult = iota
	tunShort                    // fewer bytes than the headers need
	tunNotIP                    // outer EtherType not IPv4 (GENEVE) or IPv4/IPv6 (VXLAN)
	tunBadIPHeader              // outer IP version or header length wrong
	tunBadIPLength              // outer IP length beyond the frame
	tunFragment                 // outer IP fragment: its tunnel header may be in another
	tunNotUDP                   // outer protocol not UDP
	tunBadUDPLength             // UDP length below 8 or beyond the IP packet
	tunWrongPort                // UDP destination port not the tunnel's
	tunGeneveVersion            // GENEVE version not 0 (§3.4: must be dropped)
	tunGeneveOptLen             // options beyond the datagram, or an option beyond opt_len
	tunGeneveOAM                // O bit: a control message, no packet to forward
	tunGeneveProtocol           // protocol type not IPv4 or IPv6
	tunGeneveCritical           // an unknown option with the critical bit (§3.5.1: drop)
	tunGWLBMissing              // a GWLB option (class 0x0108, type 1-3) absent
	tunGWLBDuplicate            // a GWLB option present twice
	tunGWLBWrongClass           // a GWLB type present only under another class
	tunGWLBBadLength            // a GWLB option whose data is not its size
	tunInnerVersion             // inner packet's IP version not the protocol type's
	tunVXLANFlags               // VXLAN I flag not set
	tunVXLANInner               // VXLAN inner frame shorter than an Ethernet header
	tunMax
)

var tunResultNames = [tunMax]string{
	tunOK: "ok", tunShort: "tunnel_short_frame", tunNotIP: "tunnel_outer_not_ip",
	tunBadIPHeader: "tunnel_bad_ip_header", tunBadIPLength: "tunnel_bad_ip_length",
	tunFragment: "tunnel_outer_fragment", tunNotUDP: "tunnel_outer_not_udp",
	tunBadUDPLength: "tunnel_bad_udp_length", tunWrongPort: "tunnel_wrong_port",
	tunGeneveVersion: "geneve_version", tunGeneveOptLen: "geneve_bad_option_length",
	tunGeneveOAM: "geneve_oam", tunGeneveProtocol: "geneve_protocol",
	tunGeneveCritical: "geneve_unknown_critical_option", tunGWLBMissing: "gwlb_option_missing",
	tunGWLBDuplicate: "gwlb_option_duplicate", tunGWLBWrongClass: "gwlb_option_wrong_class",
	tunGWLBBadLength: "gwlb_option_bad_length", tunInnerVersion: "tunnel_inner_ip_version",
	tunVXLANFlags: "vxlan_flags", tunVXLANInner: "vxlan_inner_short",
}

func (r tunResult) String() string {
	if r < tunMax {
		return tunResultNames[r]
	}
	return "tunnel_unknown"
}

// geneveInfo is a parsed GWLB GENEVE frame. Offsets are from the frame's
// start.
type geneveInfo struct {
	ip      int // outer IPv4 header
	udp     int // UDP header
	end     int // end of the UDP datagram (the frame may hold padding after it)
	hdr     int // GENEVE header
	inner   int // inner L3 packet (end of the options)
	inner6  bool
	unknown int // options other than the GWLB triple: echoed as they are
	vni     uint32

	endpointID   uint64 // GWLB option type 1
	attachmentID uint64 // type 2
	flowCookie   uint32 // type 3
}

// innerLen is the length of the inner packet as GENEVE carries it.
func (g *geneveInfo) innerLen() int { return g.end - g.inner }

// vxlanInfo is a parsed VXLAN frame. Offsets are from the frame's start.
type vxlanInfo struct {
	v6    bool // outer IPv6
	ip    int  // outer IP header
	udp   int
	end   int // end of the UDP datagram
	hdr   int // VXLAN header
	inner int // inner Ethernet frame, to end
	vni   uint32
	// origLen is the inner frame's length where it was mirrored from: 14 +
	// the inner IP packet's length for IPv4 and IPv6 (never less than the
	// bytes present, which may hold Ethernet padding), else the bytes present.
	origLen   int
	truncated bool // origLen > the bytes present: the mirror cut the packet
}

// innerLen is the length of the inner frame as VXLAN carries it.
func (v *vxlanInfo) innerLen() int { return v.end - v.inner }

// parseOuterUDP checks the outer IP header (with parseIPv4/parseIPv6), the
// UDP header and the room for a tunnel header of hdrLen bytes, and returns
// the tunnel header's offset and the datagram's end. Like the Linux stack,
// it takes a UDP length shorter than the IP payload (the rest is ignored)
// and refuses a longer one.
func parseOuterUDP(f []byte, v6ok bool, port uint16, hdrLen int, p *ippkt) (hdr, end int, res tunResult) {
	var r reason
	switch etherType(f) {
	case etherIPv4:
		r = parseIPv4(f, p)
	case etherIPv6:
		if !v6ok {
			return 0, 0, tunNotIP
		}
		r = parseIPv6(f, p)
	default:
		if len(f) < etherHdrLen {
			return 0, 0, tunShort
		}
		return 0, 0, tunNotIP
	}
	switch r {
	case rOK:
	case rShort:
		return 0, 0, tunShort
	case rBadIPHeader:
		return 0, 0, tunBadIPHeader
	case rBadIPLength:
		return 0, 0, tunBadIPLength
	default: // rBadL4: the UDP header does not fit, or IPv6 extension headers overrun
		if p.frag {
			return 0, 0, tunFragment
		}
		return 0, 0, tunBadUDPLength
	}
	return udpTunnel(f, p, port, hdrLen)
}

// udpTunnel is parseOuterUDP after the IP header's parse: the UDP header
// and the room for the tunnel header. The datapath, which has parsed the
// IP header already, starts here.
func udpTunnel(f []byte, p *ippkt, port uint16, hdrLen int) (hdr, end int, res tunResult) {
	if p.frag {
		return 0, 0, tunFragment
	}
	if p.proto != protoUDP {
		return 0, 0, tunNotUDP
	}
	udp := p.l4
	if udp+udpHdrLen > p.end {
		return 0, 0, tunBadUDPLength
	}
	ulen := int(be.Uint16(f[udp+4:]))
	if ulen < udpHdrLen || udp+ulen > p.end {
		return 0, 0, tunBadUDPLength
	}
	if be.Uint16(f[udp+2:]) != port {
		return 0, 0, tunWrongPort
	}
	if udp+udpHdrLen+hdrLen > udp+ulen {
		return 0, 0, tunShort
	}
	return udp + udpHdrLen, udp + ulen, tunOK
}

// parseGeneve checks a GWLB GENEVE frame and fills g: the outer headers,
// the GWLB triple, how many other options there are, and the inner packet.
// Every GWLB option must appear exactly once with its size; an unknown
// option with the critical bit set refuses the frame, other unknown options
// are counted (g.unknown) and left for geneveReturn to echo.
func parseGeneve(f []byte, g *geneveInfo) tunResult {
	var p ippkt
	if _, _, r := parseOuterUDP(f, false, geneveUDPPort, geneveHdrLen, &p); r != tunOK {
		return r
	}
	return parseGeneveIP(f, &p, g)
}

// parseGeneveIP is parseGeneve for a frame whose outer IPv4 header the
// caller has parsed (p), without error: the datapath's path.
func parseGeneveIP(f []byte, p *ippkt, g *geneveInfo) tunResult {
	h, end, r := udpTunnel(f, p, geneveUDPPort, geneveHdrLen)
	if r != tunOK {
		return r
	}
	if f[h+geneveVersionOff]>>6 != 0 {
		return tunGeneveVersion
	}
	if f[h+geneveFlagsOff]&geneveFlagO != 0 {
		return tunGeneveOAM
	}
	inner := h + geneveHdrLen + int(f[h+geneveVersionOff]&geneveOptLenMask)*4
	if inner > end {
		return tunGeneveOptLen
	}
	var want byte
	switch be.Uint16(f[h+geneveProtoOff:]) {
	case etherIPv4:
		want = 4
	case etherIPv6:
		want = 6
	default:
		return tunGeneveProtocol
	}
	*g = geneveInfo{ip: p.ip, udp: p.l4, end: end, hdr: h, inner: inner, inner6: want == 6,
		vni: be.Uint32(f[h+geneveVNIOff:]) >> 8}

	// seen and elsewhere are bit sets of GWLB types (bit t for type t): found
	// under class 0x0108, and found under another class with the same type,
	// so that a sender using the wrong class is told apart from one that
	// left an option out.
	var seen, elsewhere uint8
	for o := h + geneveHdrLen; o < inner; {
		if o+geneveOptHdrLen > inner {
			return tunGeneveOptLen
		}
		class := be.Uint16(f[o+geneveOptClassOff:])
		typ := f[o+geneveOptTypeOff]
		n := int(f[o+geneveOptLenOff]&geneveOptLenBits) * 4
		data := o + geneveOptHdrLen
		if data+n > inner {
			return tunGeneveOptLen
		}
		o = data + n
		t := typ &^ geneveOptCritical
		if t < gwlbOptEndpoint || t > gwlbOptCookie {
			t = 0
		}
		if class != gwlbOptClass || t == 0 {
			if t != 0 {
				elsewhere |= 1 << t
			}
			if typ&geneveOptCritical != 0 {
				return tunGeneveCritical
			}
			g.unknown++
			continue
		}
		if seen&(1<<t) != 0 {
			return tunGWLBDuplicate
		}
		seen |= 1 << t
		switch t {
		case gwlbOptEndpoint, gwlbOptAttachment:
			if n != 8 {
				return tunGWLBBadLength
			}
			if t == gwlbOptEndpoint {
				g.endpointID = be.Uint64(f[data:])
			} else {
				g.attachmentID = be.Uint64(f[data:])
			}
		case gwlbOptCookie:
			if n != 4 {
				return tunGWLBBadLength
			}
			g.flowCookie = be.Uint32(f[data:])
		}
	}
	if missing := ^seen & (1<<gwlbOptEndpoint | 1<<gwlbOptAttachment | 1<<gwlbOptCookie); missing != 0 {
		if missing&elsewhere != 0 {
			return tunGWLBWrongClass
		}
		return tunGWLBMissing
	}
	if inner >= end || f[inner]>>4 != want {
		return tunInnerVersion
	}
	return tunOK
}

// geneveReturn turns a frame parseGeneve accepted, in place, into the frame
// the appliance sends back to GWLB: Ethernet addresses swapped (back to the
// hop it came from; a caller that routes otherwise overwrites f[0:12]
// afterwards), outer IPv4 source and destination swapped, outer TTL set to
// geneveReturnTTL, UDP ports kept (GWLB expects its own source port back as
// the source port), the GENEVE header, every option and the inner packet
// untouched.
//
// Checksums: swapping two addresses changes neither the IPv4 header's sum
// nor the UDP pseudo-header's (one's-complement addition commutes), so only
// the TTL word is accounted for, incrementally (RFC 1624), in the IPv4
// header checksum. The UDP checksum covers neither the TTL nor anything
// else that changes, so it is left as it is: 0 (GWLB's, "no checksum")
// stays 0, any other value stays right (or exactly as wrong).
func geneveReturn(f []byte, g *geneveInfo) {
	var mac [6]byte
	copy(mac[:], f[0:6])
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])

	ip := g.ip
	src := be.Uint32(f[ip+12:])
	be.PutUint32(f[ip+12:], be.Uint32(f[ip+16:]))
	be.PutUint32(f[ip+16:], src)

	old := be.Uint16(f[ip+8:]) // TTL and protocol
	nw := uint16(geneveReturnTTL)<<8 | old&0xff
	f[ip+8] = geneveReturnTTL
	csumApply(f[ip+10:], csumAdd16(0, old, nw))
}

// parseVXLAN checks a VXLAN frame and fills v: the outer headers, the VNI,
// the inner Ethernet frame's place and its original length.
func parseVXLAN(f []byte, v *vxlanInfo) tunResult {
	var p ippkt
	h, end, r := parseOuterUDP(f, true, vxlanUDPPort, vxlanHdrLen, &p)
	if r != tunOK {
		return r
	}
	if f[h]&vxlanFlagI == 0 {
		return tunVXLANFlags
	}
	in := h + vxlanHdrLen
	if in+etherHdrLen > end {
		return tunVXLANInner
	}
	*v = vxlanInfo{v6: p.v6, ip: p.ip, udp: p.l4, end: end, hdr: h, inner: in,
		vni: be.Uint32(f[h+vxlanVNIOff:]) >> 8}
	present := end - in
	v.origLen = present
	ip := in + etherHdrLen
	switch be.Uint16(f[in+12:]) {
	case etherIPv4:
		if ip+4 <= end && f[ip]>>4 == 4 {
			v.origLen = max(present, etherHdrLen+int(be.Uint16(f[ip+2:])))
		}
	case etherIPv6:
		if ip+6 <= end && f[ip]>>4 == 6 {
			v.origLen = max(present, etherHdrLen+40+int(be.Uint16(f[ip+4:])))
		}
	}
	v.truncated = v.origLen > present
	return tunOK
}
