package fwd

// Offloads. A Linux host (and every cloud NIC driver) hands its NIC TCP
// super-frames of up to 64 KiB with a partial checksum, trusting the NIC to
// cut them into MTU-sized segments and to finish the checksums (TSO, GSO,
// checksum offload); a receiving NIC or the kernel glues segments back
// together (GRO). A veth pair passes such super-frames through untouched,
// so fwd sees them as they are, and must send them on the same way: a frame
// of 30 000 bytes written to a transmit ring without its metadata is one
// the kernel refuses (it is longer than the MTU), and TCP through fwd
// stalls.
//
// With PACKET_VNET_HDR, each frame fwd receives is preceded by a
// virtio_net_hdr saying what it is, and each frame fwd sends carries one
// saying what the kernel (or the NIC) must still do with it. fwd rewrites
// a super-frame once, in place, and passes it on with its metadata; the
// copy it captures is what crosses the wire: one record per segment, each
// with its own IP length and id, TCP sequence number, flags and checksums,
// computed here (gsoPlan.build), at the super-frame's receive time.
//
// virtio_net_hdr (linux/virtio_net.h; little-endian on the hosts fwd runs
// on, where packet sockets use the host's order):
//
//	flags       u8  @0  1 = NEEDS_CSUM (checksum from csum_start, stored at
//	                    csum_start+csum_offset), 2 = DATA_VALID
//	gso_type    u8  @1  0 none, 1 TCPv4, 3 UDP (UFO), 4 TCPv6, 5 UDP_L4;
//	                    0x80 ECN
//	hdr_len     u16 @2  bytes of headers (Ethernet to the end of TCP/UDP)
//	gso_size    u16 @4  payload bytes per segment (the MSS)
//	csum_start  u16 @6  where the checksum starts, from the Ethernet header
//	csum_offset u16 @8  where it is stored, from csum_start

import (
	"encoding/binary"
	"math/bits"
)

const (
	vnetLen = 10

	vnetNeedsCsum = 1
	vnetDataValid = 2

	gsoNone  = 0
	gsoTCPv4 = 1
	gsoUDP   = 3
	gsoTCPv6 = 4
	gsoUDPL4 = 5
	gsoECN   = 0x80

	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80

	// maxSuper is the largest frame fwd takes from or hands to the kernel:
	// a 64 KiB IP packet (the kernel's GSO limit without BIG TCP) and its
	// Ethernet header.
	maxSuper = 65535 + etherHdrLen
)

// vnet is a decoded virtio_net_hdr.
type vnet struct {
	flags, gsoType                         uint8
	hdrLen, gsoSize, csumStart, csumOffset uint16
}

func (v *vnet) decode(b []byte) {
	v.flags, v.gsoType = b[0], b[1]
	v.hdrLen = binary.LittleEndian.Uint16(b[2:])
	v.gsoSize = binary.LittleEndian.Uint16(b[4:])
	v.csumStart = binary.LittleEndian.Uint16(b[6:])
	v.csumOffset = binary.LittleEndian.Uint16(b[8:])
}

func (v *vnet) encode(b []byte) {
	b[0], b[1] = v.flags, v.gsoType
	binary.LittleEndian.PutUint16(b[2:], v.hdrLen)
	binary.LittleEndian.PutUint16(b[4:], v.gsoSize)
	binary.LittleEndian.PutUint16(b[6:], v.csumStart)
	binary.LittleEndian.PutUint16(b[8:], v.csumOffset)
}

// gsoPlan is how a super-frame is cut into segments.
type gsoPlan struct {
	p   ippkt
	hl  int // bytes of headers repeated in every segment (Ethernet to the end of TCP/UDP)
	mss int // payload bytes per segment
	n   int // segments
	typ uint8
	ecn uint8 // gsoECN when the sender set CWR and the NIC must keep it on the first segment only
}

// planGSO checks a super-frame's metadata against its headers and plans
// its segments. The metadata comes from the kernel, but fwd trusts nothing
// it has not checked: the type must match the packet, the headers must lie
// inside it, and the segment size must be sane.
func planGSO(f []byte, p *ippkt, v *vnet, g *gsoPlan) reason {
	typ := v.gsoType &^ gsoECN
	// A super-frame is one IP packet: bytes after it (Ethernet pads only
	// short frames) would be sent as payload the capture never shows.
	if p.frag || p.l4 == 0 || p.end != len(f) && len(f) > 60 {
		return rBadGSO
	}
	switch typ {
	case gsoTCPv4, gsoTCPv6:
		if p.proto != protoTCP || p.v6 != (typ == gsoTCPv6) || p.l4+20 > p.end {
			return rBadGSO
		}
		thl := int(f[p.l4+12]>>4) * 4
		if thl < 20 || p.l4+thl > p.end {
			return rBadGSO
		}
		g.hl = p.l4 + thl
	case gsoUDPL4:
		if p.proto != protoUDP || p.l4+8 > p.end {
			return rBadGSO
		}
		g.hl = p.l4 + 8
	default: // UFO (fragmenting UDP) is gone from Linux; nothing else is segmentable here
		return rBadGSO
	}
	if v.gsoSize < 8 {
		return rBadGSO
	}
	g.p, g.typ, g.ecn, g.mss = *p, typ, v.gsoType&gsoECN, int(v.gsoSize)
	g.setMSS(g.mss)
	return rOK
}

// setMSS sets the segment size (made smaller when the egress port's MTU is
// smaller than the sender's: cutting a TCP stream finer changes nothing an
// end host can tell).
func (g *gsoPlan) setMSS(mss int) {
	g.mss = mss
	pay := g.p.end - g.hl
	g.n = 1
	if pay > mss {
		g.n = (pay + mss - 1) / mss
	}
}

// clamp lowers the segment size so that every segment fits mtu (IP bytes).
// Only a TCP stream can be cut finer: each UDP segment is a datagram of
// its own, and one that does not fit is refused (rTooBig).
func (g *gsoPlan) clamp(mtu int) reason {
	if mtu <= 0 || g.hl-etherHdrLen+g.mss <= mtu {
		return rOK
	}
	if g.typ == gsoUDPL4 || mtu <= g.hl-etherHdrLen+8 {
		return rTooBig
	}
	g.setMSS(mtu - (g.hl - etherHdrLen))
	return rOK
}

// meta is the virtio_net_hdr that asks the kernel or the NIC to do what
// this plan does, for a super-frame whose checksum field holds the
// pseudo-header sum (seedPartial).
func (g *gsoPlan) meta() vnet {
	v := vnet{flags: vnetNeedsCsum, gsoType: g.typ | g.ecn, hdrLen: uint16(g.hl), gsoSize: uint16(g.mss), csumStart: uint16(g.p.l4)}
	if g.typ == gsoUDPL4 {
		v.csumOffset = 6
	} else {
		v.csumOffset = 16
	}
	return v
}

// build writes segment k of f into dst (at least hl+mss bytes) and returns
// its length: the headers with the segment's lengths, IP id, sequence
// number and flags, and checksums computed from scratch over the result.
func (g *gsoPlan) build(f []byte, k int, dst []byte) int {
	p := &g.p
	from := g.hl + k*g.mss
	to := from + g.mss
	if to > p.end || k == g.n-1 {
		to = p.end
	}
	chunk := to - from
	copy(dst, f[:g.hl])
	copy(dst[g.hl:], f[from:to])
	n := g.hl + chunk
	ip := p.ip
	l4len := n - p.l4
	if p.v6 {
		binary.BigEndian.PutUint16(dst[ip+4:], uint16(n-ip-40))
	} else {
		binary.BigEndian.PutUint16(dst[ip+2:], uint16(n-ip))
		binary.BigEndian.PutUint16(dst[ip+4:], binary.BigEndian.Uint16(f[ip+4:])+uint16(k))
		dst[ip+10], dst[ip+11] = 0, 0
		binary.BigEndian.PutUint16(dst[ip+10:], csumFinish(sumBytes(dst[ip:p.l4], 0)))
	}
	var ck int
	if g.typ == gsoUDPL4 {
		binary.BigEndian.PutUint16(dst[p.l4+4:], uint16(l4len))
		ck = p.l4 + 6
	} else {
		seq := binary.BigEndian.Uint32(f[p.l4+4:]) + uint32(k*g.mss)
		binary.BigEndian.PutUint32(dst[p.l4+4:], seq)
		fl := dst[p.l4+13]
		if k != g.n-1 {
			fl &^= tcpFIN | tcpPSH
		}
		if k != 0 {
			fl &^= tcpCWR
		}
		dst[p.l4+13] = fl
		ck = p.l4 + 16
	}
	dst[ck], dst[ck+1] = 0, 0
	c := csumFinish(sumBytes(dst[p.l4:n], pseudo(dst, p, l4len)))
	if c == 0 && g.typ == gsoUDPL4 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(dst[ck:], c)
	return n
}

// seedPartial puts into a super-frame's L4 checksum field what the kernel
// expects of a packet whose checksum it is to finish (CHECKSUM_PARTIAL):
// the folded pseudo-header sum, over the whole L4 length. It is written
// after the rewrite, so it covers the new addresses.
func seedPartial(f []byte, p *ippkt, csumOff int) {
	binary.BigEndian.PutUint16(f[p.l4+csumOff:], csumFold(pseudo(f, p, p.end-p.l4)))
}

// pseudo is the unfolded sum of the pseudo-header of the packet p in f,
// for an L4 length of l4len.
func pseudo(f []byte, p *ippkt, l4len int) uint32 {
	var s uint32
	if p.v6 {
		for i := p.ip + 8; i < p.ip+40; i += 2 {
			s += uint32(binary.BigEndian.Uint16(f[i:]))
		}
	} else {
		for i := p.ip + 12; i < p.ip+20; i += 2 {
			s += uint32(binary.BigEndian.Uint16(f[i:]))
		}
	}
	return s + uint32(p.proto) + uint32(l4len>>16) + uint32(l4len&0xffff)
}

// sumBytes adds b to the unfolded one's-complement sum s, 8 bytes at a
// time with carries (RFC 1071 §2(B): the sum can be taken in the host's
// byte order and swapped at the end), so a 64 KiB super-frame costs a few
// microseconds rather than the tens a 16-bit loop takes.
func sumBytes(b []byte, s uint32) uint32 {
	var acc, c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	acc += c // cannot carry again: c is 0 or 1 and acc < 2^64-1 after a carry out
	if acc < c {
		acc++
	}
	var last [8]byte // the 0 to 7 bytes left, zero-padded as RFC 1071 pads an odd one
	copy(last[:], b)
	acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(last[:]), 0)
	acc += c
	// Fold 64 → 16 bits in the host's (little-endian) order, then swap to
	// network order before adding the caller's big-endian sum.
	a := (acc >> 32) + (acc & 0xffffffff)
	a = (a >> 32) + (a & 0xffffffff)
	a = (a >> 16) + (a & 0xffff)
	a = (a >> 16) + (a & 0xffff)
	a = (a >> 16) + (a & 0xffff)
	return s + uint32(bits.ReverseBytes16(uint16(a)))
}

// csumFinish folds an unfolded sum and complements it: the checksum to store.
func csumFinish(s uint32) uint16 { return ^csumFold(s) }

// sniffOffload tells, from the frame alone, what metadata a backend that
// has none would have been given: DPDK's net_af_packet and net_tap copy
// frames from a kernel interface without their virtio_net_hdr, so they
// pass on the kernel's super-frames and partial checksums unmarked. min
// is the smallest MTU of fwd's ports, in the MTU of the port the frame
// came in on (0: unknown; no super-frames without min).
//
//   - A TCP packet longer than min is a super-frame: longer than in, it
//     did not come off a wire (the sender's TSO or GRO on our port);
//     between min and in, it may have, but it is cut like one so that it
//     fits a smaller egress port. Its segment size is what in leaves after
//     its IP and TCP headers (the sender's own MSS when the sender is on
//     that link, so the ingress copy shows the segments it meant); finish
//     lowers it to what the egress port's MTU leaves (gsoPlan.clamp), and
//     a frame that fits the egress port stays one segment. The segments'
//     checksums are computed from scratch (gsoPlan.build), so the partial
//     checksum such a frame carries does not matter.
//     Longer UDP is left alone (dropped as larger_than_mtu): a UDP GSO
//     frame's datagram boundaries cannot be told from its bytes.
//   - A TCP or UDP packet whose checksum field holds the folded sum of its
//     pseudo-header (what the kernel leaves for a NIC to finish, and what
//     GRO leaves in a merged frame), and whose full checksum does not
//     verify, has a partial checksum: it is marked NEEDS_CSUM, which
//     HandleMeta finishes. A valid packet is never touched; only a
//     corrupted one whose field happens to equal that sum (1 in 65 536 of
//     them) is given a valid checksum.
//
// Cost per frame: a second header parse and a sum over the pseudo-header
// (a dozen adds); the sum over the whole packet only for frames whose
// field matches, which are those the kernel left partial.
func sniffOffload(f []byte, min, in int) vnet {
	// The commonest frame of an appliance port, a GENEVE or VXLAN datagram
	// (IPv4 without options, UDP without a checksum), answered from four
	// bytes, before the header is parsed (the appliance parses it again).
	// The full path below gives the same answer: a zero checksum field is
	// never a partial one, which holds the folded pseudo-header sum, not
	// zero since the protocol number is not; a fragment or a bad header
	// gives none either.
	if len(f) >= etherHdrLen+28 && etherType(f) == etherIPv4 && f[14] == 0x45 && f[23] == protoUDP && f[40]|f[41] == 0 {
		return vnet{}
	}
	var p ippkt
	switch etherType(f) {
	case etherIPv4:
		if parseIPv4(f, &p) != rOK {
			return vnet{}
		}
	case etherIPv6:
		if parseIPv6(f, &p) != rOK {
			return vnet{}
		}
	default:
		return vnet{}
	}
	ck := l4CsumOff(p.proto)
	if p.frag || p.l4 == 0 || ck < 0 || p.l4+ck+2 > p.end {
		return vnet{}
	}
	ps := pseudo(f, &p, p.end-p.l4)
	field := binary.BigEndian.Uint16(f[p.l4+ck:])
	if p.proto == protoTCP && min > 0 && p.end-etherHdrLen > min && p.l4+20 <= p.end {
		// A packet that fits its ingress link is one the wire carried
		// whole: cutting it recomputes every checksum, so it is cut only
		// when its own checksum is right (or is the sender's partial one);
		// a damaged one stays as it came. Longer than the ingress link, it
		// can only be a super-frame (TSO, or GRO, which joins only valid
		// segments).
		if p.end-etherHdrLen <= in && field != csumFold(ps) && csumFold(sumBytes(f[p.l4:p.end], ps)) != 0xffff {
			return vnet{}
		}
		v := vnet{gsoType: gsoTCPv4}
		if p.v6 {
			v.gsoType = gsoTCPv6
		}
		mss := max(in, min) - (p.l4 - etherHdrLen) - int(f[p.l4+12]>>4)*4
		v.gsoSize = uint16(max(mss, 0)) // planGSO refuses a size below 8 (headers that leave no room)
		return v
	}
	if field != csumFold(ps) || csumFold(sumBytes(f[p.l4:p.end], ps)) == 0xffff {
		return vnet{}
	}
	return vnet{flags: vnetNeedsCsum, csumStart: uint16(p.l4), csumOffset: uint16(ck)}
}

// finishPartial finishes the checksum of one packet (p in f) that its
// sender left to a NIC that is not there (metadata m: NEEDS_CSUM without
// GSO), where the sender said (csum_start, csum_offset: an encapsulating
// sender points at the inner header), so that the updates that follow are
// right and what is captured and sent is valid. rBadGSO when the place
// lies outside the packet.
func finishPartial(f []byte, p *ippkt, m *vnet) reason {
	if m.flags&vnetNeedsCsum == 0 || m.gsoType != gsoNone {
		return rOK
	}
	if !finishAt(f, int(m.csumStart), int(m.csumOffset), p.end) {
		return rBadGSO
	}
	return rOK
}

// finishAt finishes a partial checksum as the kernel does
// (skb_checksum_help): the sum of the bytes from start to end (the IP
// packet's end: Ethernet padding is not the sender's), whose checksum
// field holds the pseudo-header sum, folded and complemented into
// start+offset. False when the place lies outside the packet.
func finishAt(f []byte, start, offset, end int) bool {
	if start < etherHdrLen || offset < 0 || start+offset+2 > end {
		return false
	}
	c := csumFinish(sumBytes(f[start:end], 0))
	if c == 0 {
		c = 0xffff // as the kernel does: 0 means "no checksum" to UDP
	}
	binary.BigEndian.PutUint16(f[start+offset:], c)
	return true
}

// finishL4 computes the TCP or UDP checksum of the whole packet p from
// scratch (not for fragments, whose checksum covers bytes not here).
func finishL4(f []byte, p *ippkt) {
	if p.frag || p.l4 == 0 {
		return
	}
	var ck int
	if p.v6 {
		ck = l4CsumOff6(p.proto)
	} else {
		ck = l4CsumOff(p.proto)
	}
	if ck < 0 || p.l4+ck+2 > p.end {
		return
	}
	f[p.l4+ck], f[p.l4+ck+1] = 0, 0
	c := csumFinish(sumBytes(f[p.l4:p.end], pseudo(f, p, p.end-p.l4)))
	if c == 0 && p.proto == protoUDP {
		c = 0xffff
	}
	be.PutUint16(f[p.l4+ck:], c)
}

// pseudoSum is the unfolded sum of the IPv4 pseudo-header.
func pseudoSum(f []byte, p *ippkt) uint32 { return pseudo(f, p, p.end-p.l4) }
