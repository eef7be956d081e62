package fwd

// The parser finds what the datapath needs in a frame and nothing more: the
// offsets of the IPv4 header and of the L4 header, the protocol and whether
// this is a fragment. It never allocates, never copies, and never trusts a
// length field it has not checked against the bytes it holds; everything it
// refuses it refuses with a reason the datapath counts.

import "encoding/binary"

const (
	etherHdrLen = 14
	etherIPv4   = 0x0800
	etherARP    = 0x0806
	etherIPv6   = 0x86dd
	etherVLAN   = 0x8100
	etherQinQ   = 0x88a8

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6AH       = 51
	ip6DestOpts = 60

	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
	ndpNS            = 135
	ndpNA            = 136

	icmpEchoReply   = 0
	icmpUnreach     = 3
	icmpRedirect    = 5
	icmpEchoRequest = 8
	icmpTimeExceed  = 11
	icmpParamProb   = 12
)

// reason is why a frame was not forwarded. Each has a counter.
type reason uint8

const (
	rOK reason = iota
	rShort
	rNotIPv4
	rIPv6
	rVLAN
	rBadIPHeader
	rBadIPLength
	rTTL
	rNotLocal
	rNoRule
	rBadL4
	rARPOther
	rBadARP
	rNeighQueued
	rNeighFull
	rNeighFailed
	rTxFull
	rEchoLocal
	rARPReplied
	rBadICMPError
	rNDPReplied
	rNDPOther
	rBadNDP
	rICMPRedirect
	rBadGSO
	rTooBig
	rIPOptions
	rSourceRoute
	rL2Multicast
	rForeignMAC
	rTxRejected
	rMax
)

var reasonNames = [rMax]string{
	rOK: "forwarded", rShort: "short_frame", rNotIPv4: "other_ethertype", rIPv6: "ipv6_not_for_us",
	rVLAN: "vlan_tagged", rBadIPHeader: "bad_ip_header", rBadIPLength: "bad_ip_length",
	rTTL: "ttl_expired", rNotLocal: "not_local_address", rNoRule: "no_rule", rBadL4: "bad_l4_header",
	rARPOther: "arp_not_for_us", rBadARP: "bad_arp", rNeighQueued: "queued_for_arp",
	rNeighFull: "arp_queue_full", rNeighFailed: "arp_unresolved", rTxFull: "tx_ring_full",
	rEchoLocal: "echo_answered", rARPReplied: "arp_answered", rBadICMPError: "bad_icmp_error",
	rNDPReplied: "ndp_answered", rNDPOther: "ndp_not_for_us", rBadNDP: "bad_ndp",
	rICMPRedirect: "icmp_redirect", rBadGSO: "bad_offload_metadata", rTooBig: "larger_than_mtu",
	rIPOptions: "ip_options", rSourceRoute: "ip_source_route", rL2Multicast: "link_broadcast_or_multicast",
	rForeignMAC: "foreign_mac", rTxRejected: "tx_rejected",
}

// ippkt is a parsed IPv4 or IPv6 packet inside a frame. Offsets are from
// the start of the frame.
type ippkt struct {
	v6      bool
	ip      int // IP header
	ihl     int // header length in bytes (IPv6: 40; extension headers are skipped to l4)
	end     int // end of the IP packet (frame may carry Ethernet padding after it)
	l4      int // L4 header, or 0 when absent (non-first fragment)
	proto   uint8
	frag    bool // a fragment (first or later)
	l4Whole bool // the L4 header's checksum field lies inside the packet
}

// parseIPv4 checks the IPv4 header at f[etherHdrLen:] and locates the L4
// header. It accepts options, fragments and Ethernet padding; it refuses
// headers whose lengths disagree with the bytes present.
func parseIPv4(f []byte, p *ippkt) reason {
	const o = etherHdrLen
	if len(f) < o+20 {
		return rShort
	}
	vihl := f[o]
	ihl := int(vihl&0x0f) * 4
	if vihl>>4 != 4 || ihl < 20 {
		return rBadIPHeader
	}
	tot := int(binary.BigEndian.Uint16(f[o+2:]))
	if tot < ihl || o+tot > len(f) {
		return rBadIPLength
	}
	p.ip, p.ihl, p.end = o, ihl, o+tot
	p.proto = f[o+9]
	fo := binary.BigEndian.Uint16(f[o+6:])
	p.frag = fo&0x3fff != 0 // MF set or offset non-zero
	p.l4, p.l4Whole = 0, false
	if fo&0x1fff != 0 {
		return rOK // later fragment: no L4 header here
	}
	p.l4 = o + ihl
	if ck := l4CsumOff(p.proto); ck >= 0 {
		p.l4Whole = p.l4+ck+2 <= p.end
		if !p.frag && !p.l4Whole {
			return rBadL4 // an unfragmented packet too short for its L4 header
		}
	}
	return rOK
}

// parseIPv6 checks the IPv6 header at f[etherHdrLen:], walks the extension
// headers (hop-by-hop, routing, destination options, fragment, AH) to the
// L4 header and notes fragments. A later fragment has no L4 header (l4 = 0).
func parseIPv6(f []byte, p *ippkt) reason {
	const o = etherHdrLen
	if len(f) < o+40 {
		return rShort
	}
	if f[o]>>4 != 6 {
		return rBadIPHeader
	}
	plen := int(binary.BigEndian.Uint16(f[o+4:]))
	if o+40+plen > len(f) {
		return rBadIPLength
	}
	*p = ippkt{v6: true, ip: o, ihl: 40, end: o + 40 + plen}
	next, off := f[o+6], o+40
	for i := 0; ; i++ {
		if i == 8 {
			return rBadL4 // more extension headers than any real packet has
		}
		switch next {
		case ip6HopByHop, ip6Routing, ip6DestOpts, ip6AH:
			if off+8 > p.end {
				return rBadL4
			}
			n := (int(f[off+1]) + 1) * 8
			if next == ip6AH {
				n = (int(f[off+1]) + 2) * 4
			}
			next, off = f[off], off+n
			continue
		case ip6Fragment:
			if off+8 > p.end {
				return rBadL4
			}
			p.frag = true
			fo := binary.BigEndian.Uint16(f[off+2:])
			next, off = f[off], off+8
			if fo&0xfff8 != 0 {
				p.proto = next
				return rOK // later fragment
			}
			continue
		}
		break
	}
	if off > p.end {
		return rBadL4
	}
	p.proto, p.l4 = next, off
	if ck := l4CsumOff6(p.proto); ck >= 0 {
		p.l4Whole = p.l4+ck+2 <= p.end
		if !p.frag && !p.l4Whole {
			return rBadL4
		}
	}
	return rOK
}

// l4CsumOff6 is l4CsumOff for IPv6, where the ICMPv6 checksum covers the
// pseudo-header too.
func l4CsumOff6(proto uint8) int {
	if proto == protoICMPv6 {
		return 2
	}
	return l4CsumOff(proto)
}

// l4CsumOff is the offset of the checksum inside the L4 header, or -1 for
// protocols whose checksum does not cover the IP addresses (or that the
// datapath passes through untouched).
func l4CsumOff(proto uint8) int {
	switch proto {
	case protoTCP:
		return 16
	case protoUDP:
		return 6
	}
	return -1
}

// etherType returns the frame's EtherType, or 0 when the frame is too short.
func etherType(f []byte) uint16 {
	if len(f) < etherHdrLen {
		return 0
	}
	return binary.BigEndian.Uint16(f[12:])
}

// Checksum arithmetic (RFC 1071, incremental updates per RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m')). Everything works on the checksum as stored in the
// packet, so a wrong checksum stays exactly as wrong: the end host, not the
// forwarder, decides what to do with it.

// csumFold folds a 32-bit one's-complement sum to 16 bits.
func csumFold(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s += s >> 16
	return uint16(s)
}

// csumAdd32 is the one's-complement sum contribution of replacing the 32-bit
// value old by new: ~old + new, as two 16-bit words each.
func csumAdd32(acc uint32, old, new uint32) uint32 {
	return acc + uint32(^uint16(old>>16)) + uint32(^uint16(old)) + new>>16 + new&0xffff
}

// csumAdd128 is csumAdd32 for a 16-byte (IPv6) address.
func csumAdd128(acc uint32, old, new []byte) uint32 {
	for i := 0; i < 16; i += 2 {
		acc += uint32(^binary.BigEndian.Uint16(old[i:])) + uint32(binary.BigEndian.Uint16(new[i:]))
	}
	return acc
}

// csumAdd16 is csumAdd32 for one 16-bit word.
func csumAdd16(acc uint32, old, new uint16) uint32 {
	return acc + uint32(^old) + uint32(new)
}

// csumApply applies an accumulated delta to the checksum stored at b[0:2].
func csumApply(b []byte, delta uint32) {
	hc := binary.BigEndian.Uint16(b)
	binary.BigEndian.PutUint16(b, ^csumFold(uint32(^hc)+delta))
}

// csumApplyUDP is csumApply for UDP, where 0 means "no checksum": a zero
// checksum stays zero, and a computed zero is sent as 0xffff (RFC 768).
func csumApplyUDP(b []byte, delta uint32) {
	hc := binary.BigEndian.Uint16(b)
	if hc == 0 {
		return
	}
	n := ^csumFold(uint32(^hc) + delta)
	if n == 0 {
		n = 0xffff
	}
	binary.BigEndian.PutUint16(b, n)
}

// csum computes the Internet checksum of b from scratch, starting from a
// partial sum (used by tests as the reference, and for generated packets).
func csum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>16 != 0 {
		s = (s >> 16) + (s & 0xffff)
	}
	return ^uint16(s)
}

// ipOptions classifies the options of the IPv4 header p: rOK when it has
// none (or only padding), rSourceRoute when one of them is a loose or
// strict source route, rIPOptions for any other, rBadIPHeader when their
// lengths do not add up. Options are a leak through an address rewrite:
// Record Route and Timestamp collect the addresses the rule hides, and a
// source route names a next hop fwd would not choose.
func ipOptions(f []byte, p *ippkt) reason {
	r := rOK
	end := p.ip + p.ihl
	for i := p.ip + 20; i < end; {
		switch t := f[i]; t {
		case 0: // end of options
			return r
		case 1: // no-op
			i++
			continue
		default:
			if i+1 >= end || f[i+1] < 2 || i+int(f[i+1]) > end {
				return rBadIPHeader
			}
			if t == 0x83 || t == 0x89 { // LSRR, SSRR
				return rSourceRoute
			}
			r = rIPOptions
			i += int(f[i+1])
		}
	}
	return r
}
