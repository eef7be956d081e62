package main

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

	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17

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
	rMax
)

var reasonNames = [rMax]string{
	rOK: "forwarded", rShort: "short_frame", rNotIPv4: "other_ethertype", rIPv6: "ipv6",
	rVLAN: "vlan_tagged", rBadIPHeader: "bad_ip_header", rBadIPLength: "bad_ip_length",
	rTTL: "ttl_expired", rNotLocal: "not_local_address", rNoRule: "no_rule", rBadL4: "bad_l4_header",
	rARPOther: "arp_not_for_us", rBadARP: "bad_arp", rNeighQueued: "queued_for_arp",
	rNeighFull: "arp_queue_full", rNeighFailed: "arp_unresolved", rTxFull: "tx_ring_full",
	rEchoLocal: "echo_answered", rARPReplied: "arp_answered", rBadICMPError: "bad_icmp_error",
}

// ipv4 is a parsed IPv4 packet inside a frame. Offsets are from the start of
// the frame.
type ipv4 struct {
	ip      int // IPv4 header
	ihl     int // header length in bytes
	end     int // end of the IP packet (frame may carry Ethernet padding after it)
	l4      int // L4 header, or 0 when absent (non-first fragment)
	proto   uint8
	frag    bool // a fragment (first or later)
	l4Whole bool // the L4 header's checksum field lies inside the packet
}

// parseIPv4 checks the IPv4 header at f[etherHdrLen:] and locates the L4
// header. It accepts options, fragments and Ethernet padding; it refuses
// headers whose lengths disagree with the bytes present.
func parseIPv4(f []byte, p *ipv4) reason {
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
