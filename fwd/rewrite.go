package fwd

// Address rewriting with incremental checksum updates (RFC 1624). Only the
// words that change are touched: the IPv4 header checksum for the addresses
// and the TTL, the TCP/UDP checksum for the pseudo-header addresses (in the
// first fragment, which is where the L4 header and its checksum live), and
// for ICMP errors the header quoted inside them plus the ICMP checksum that
// covers the quote.

import "encoding/binary"

var be = binary.BigEndian

// isICMPError says whether an ICMP type quotes the packet that caused it.
func isICMPError(t uint8) bool {
	return t == icmpUnreach || t == 4 || t == icmpTimeExceed || t == icmpParamProb
}

// rewrite sets the packet's addresses for leaving through rule r in
// direction dir and decrements the TTL. When outer is false (an ICMP error
// from a third party, matched by the header it quotes) the source address
// is left as it is. The caller has checked TTL > 1.
func rewrite(f []byte, p *ippkt, r *crule, dir uint8, outer bool) reason {
	ip := p.ip
	oldSrc, oldDst := be.Uint32(f[ip+12:]), be.Uint32(f[ip+16:])
	newSrc, newDst := r.newSrc[dir], r.newDst[dir]
	if !outer {
		newSrc = oldSrc
	}
	// Quoted header first: it can still refuse the packet untouched.
	if p.proto == protoICMP && p.l4 != 0 && !p.frag && p.l4+8 <= p.end && isICMPError(f[p.l4]) {
		if !rewriteQuoted(f, p, newDst, r.newSrc[dir]) {
			return rBadICMPError
		}
	}
	delta := csumAdd32(csumAdd32(0, oldSrc, newSrc), oldDst, newDst)
	ttl := f[ip+8]
	oldW := uint16(ttl)<<8 | uint16(p.proto)
	f[ip+8] = ttl - 1
	be.PutUint32(f[ip+12:], newSrc)
	be.PutUint32(f[ip+16:], newDst)
	csumApply(f[ip+10:], csumAdd16(delta, oldW, oldW-0x100))
	l4Adjust(f, p, delta, 0)
	return rOK
}

// l4Adjust applies a change of the pseudo-header (the addresses) to the
// L4 checksum, when the L4 header holds one and is here (the first
// fragment): TCP, UDP (a zero checksum stays zero) and, for IPv6, ICMPv6,
// whose checksum also takes icmp6 (the change inside a quoted packet).
func l4Adjust(f []byte, p *ippkt, delta, icmp6 uint32) {
	if p.l4 == 0 || !p.l4Whole {
		return
	}
	switch {
	case p.proto == protoTCP:
		csumApply(f[p.l4+16:], delta)
	case p.proto == protoUDP:
		csumApplyUDP(f[p.l4+6:], delta)
	case p.proto == protoICMPv6 && p.v6:
		csumApply(f[p.l4+2:], delta+icmp6)
	}
}

// rewriteQuoted rewrites the header quoted by an ICMP error so the receiver
// recognises it as its own packet: quoted source := qsrc (the new outer
// destination), quoted destination := qdst (the rule's local address on the
// receiving side). It fixes the quoted IP checksum, the quoted TCP/UDP
// checksum when quoted, and the ICMP checksum over all of it.
func rewriteQuoted(f []byte, p *ippkt, qsrc, qdst uint32) bool {
	icmp := p.l4
	q := icmp + 8
	if q+20 > p.end || f[q]>>4 != 4 {
		return false
	}
	qihl := int(f[q]&0x0f) * 4
	if qihl < 20 || q+qihl > p.end {
		return false
	}
	oldS, oldD := be.Uint32(f[q+12:]), be.Uint32(f[q+16:])
	delta := csumAdd32(csumAdd32(0, oldS, qsrc), oldD, qdst)
	icmpDelta := delta
	be.PutUint32(f[q+12:], qsrc)
	be.PutUint32(f[q+16:], qdst)
	old := be.Uint16(f[q+10:])
	csumApply(f[q+10:], delta)
	icmpDelta = csumAdd16(icmpDelta, old, be.Uint16(f[q+10:]))
	if be.Uint16(f[q+6:])&0x1fff == 0 { // the quote starts at the L4 header
		l4 := q + qihl
		var ck int
		switch f[q+9] {
		case protoTCP:
			ck = l4 + 16
		case protoUDP:
			ck = l4 + 6
		}
		if ck != 0 && ck+2 <= p.end {
			old := be.Uint16(f[ck:])
			if f[q+9] == protoUDP {
				csumApplyUDP(f[ck:], delta)
			} else {
				csumApply(f[ck:], delta)
			}
			icmpDelta = csumAdd16(icmpDelta, old, be.Uint16(f[ck:]))
		}
	}
	csumApply(f[icmp+2:], icmpDelta)
	return true
}

// setSrc replaces the source address and fixes the checksums that cover it
// (used for inline captures, which show the original source).
func setSrc(f []byte, p *ippkt, src uint32) {
	ip := p.ip
	delta := csumAdd32(0, be.Uint32(f[ip+12:]), src)
	be.PutUint32(f[ip+12:], src)
	csumApply(f[ip+10:], delta)
	l4Adjust(f, p, delta, 0)
}

// echoReply turns an ICMP echo request in f into its reply, in place:
// addresses and MACs swapped, TTL 64, type 0. Swapping the addresses leaves
// the IP checksum's sum unchanged; the TTL and type changes are applied
// incrementally.
func echoReply(f []byte, p *ippkt, mac [6]byte) {
	ip := p.ip
	var s, d [4]byte
	copy(s[:], f[ip+12:ip+16])
	copy(d[:], f[ip+16:ip+20])
	copy(f[ip+12:], d[:])
	copy(f[ip+16:], s[:])
	oldW := be.Uint16(f[ip+8:])
	f[ip+8] = 64
	csumApply(f[ip+10:], csumAdd16(0, oldW, be.Uint16(f[ip+8:])))
	oldT := be.Uint16(f[p.l4:])
	f[p.l4] = icmpEchoReply
	csumApply(f[p.l4+2:], csumAdd16(0, oldT, be.Uint16(f[p.l4:])))
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
}
