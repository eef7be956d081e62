package fwd

// The IPv6 path: the same steps as IPv4 (datapath.go) with NDP in place of
// ARP. Neighbor solicitations for our addresses are answered, neighbor
// advertisements and the link-layer options of solicitations update known
// neighbors, and next hops are resolved by solicitations to their
// solicited-node multicast address. Echo requests to a local address
// without a rule are answered. Rules rewrite both addresses and the hop
// limit; TCP, UDP and ICMPv6 checksums cover the addresses through the
// pseudo-header and are updated incrementally, including inside the packet
// an ICMPv6 error quotes.

import (
	"net/netip"

	"github.com/fmcap/fmcap/shmring"
)

func (d *Datapath) handle6(in int, f []byte, m vnet) int {
	var p ippkt
	if r := parseIPv6(f, &p); r != rOK {
		return d.drop(r)
	}
	// Neighbor discovery is between fwd and its neighbors, even when the
	// addresses match a rule (a unicast advertisement from A to X would).
	if p.proto == protoICMPv6 && p.l4 != 0 && !p.frag && p.l4+8 <= p.end {
		switch typ := f[p.l4]; typ {
		case ndpNS, ndpNA:
			return d.ndp(in, f, &p)
		case 133, 134: // router solicitation/advertisement
			return d.drop(rNDPOther)
		case 137: // redirect: as for IPv4 (Handle)
			return d.drop(rICMPRedirect)
		}
	}
	if rs := d.ourMAC(in, f); rs != rOK {
		return d.drop(rs)
	}
	if rs := finishPartial(f, &p, &m); rs != rOK {
		return d.drop(rs)
	}
	dst, src := f[p.ip+24:p.ip+40], f[p.ip+8:p.ip+24]
	t := d.cur
	r, dir, ok := t.lookup6(uint8(in), dst, src)
	outer := true
	if !ok && !t.isLocal6(uint8(in), dst) {
		if routable6(src, dst) {
			if r, ok = t.route6(uint8(in), dst); ok && t.isLocalAny6(dst) {
				ok = false // fwd's own address on another port: not routed
			}
		}
		if !ok {
			return d.drop(rIPv6)
		}
		dir = dirForward
	}
	if !ok {
		if p.proto != protoICMPv6 || p.l4 == 0 || p.frag || p.l4+8 > p.end {
			return d.drop(rNoRule)
		}
		switch typ := f[p.l4]; {
		case typ == icmp6EchoRequest:
			echoReply6(f, &p, d.ports[in].mac)
			d.answered(rEchoLocal)
			return d.sent(in, f)
		case typ < 128 && p.l4+8+40 <= p.end: // an error quoting our own packet
			q := p.l4 + 8
			if [16]byte(f[q+8:q+24]) != [16]byte(dst) {
				return d.drop(rBadICMPError)
			}
			if r, dir, ok = t.lookup6(uint8(in), f[q+8:q+24], f[q+24:q+40]); !ok {
				return d.drop(rNoRule)
			}
			outer = false
		default:
			return d.drop(rNoRule)
		}
	}
	if f[p.ip+7] <= 1 {
		return d.drop(rTTL)
	}
	g, rs := d.offload(f, &p, r, dir, m)
	if rs != rOK {
		if rs == rTooBig {
			d.tooBig(in, f, &p, d.ports[r.outPort[dir]].mtu)
		}
		return d.drop(rs)
	}
	if r.mode == ModeIngress || r.mode == ModeBoth {
		d.capture(f, len(f), in, shmring.DirIngress, r, g)
	}
	orig := [16]byte(src)
	if r.route {
		f[p.ip+7]-- // the hop limit: no header checksum to mend
	} else if rs := rewrite6(f, &p, r, dir, outer); rs != rOK {
		return d.drop(rs)
	}
	return d.finish(f, r, dir, &orig, &p, g)
}

// rewrite6 is rewrite for IPv6.
func rewrite6(f []byte, p *ippkt, r *crule, dir uint8, outer bool) reason {
	ip := p.ip
	newDst := r.newDst6[dir][:]
	newSrc := r.newSrc6[dir][:]
	if !outer {
		newSrc = f[ip+8 : ip+24]
	}
	var qdelta uint32
	if p.proto == protoICMPv6 && p.l4 != 0 && !p.frag && p.l4+8 <= p.end && f[p.l4] < 128 {
		var ok bool
		if qdelta, ok = rewriteQuoted6(f, p, newDst, r.newSrc6[dir][:]); !ok {
			return rBadICMPError
		}
	}
	delta := csumAdd128(csumAdd128(0, f[ip+8:ip+24], newSrc), f[ip+24:ip+40], newDst)
	copy(f[ip+8:ip+24], newSrc)
	copy(f[ip+24:ip+40], newDst)
	f[ip+7]--
	l4Adjust(f, p, delta, qdelta)
	return rOK
}

// rewriteQuoted6 rewrites the packet an ICMPv6 error quotes (source :=
// qsrc, destination := qdst, and its TCP/UDP/ICMPv6 checksum when quoted)
// and returns the change to the outer ICMPv6 checksum's sum.
func rewriteQuoted6(f []byte, p *ippkt, qsrc, qdst []byte) (uint32, bool) {
	q := p.l4 + 8
	if q+40 > p.end || f[q]>>4 != 6 {
		return 0, false
	}
	delta := csumAdd128(csumAdd128(0, f[q+8:q+24], qsrc), f[q+24:q+40], qdst)
	icmp := delta
	copy(f[q+8:q+24], qsrc)
	copy(f[q+24:q+40], qdst)
	var ck int
	switch l4 := q + 40; f[q+6] { // only an L4 header right after the quoted header
	case protoTCP:
		ck = l4 + 16
	case protoUDP:
		ck = l4 + 6
	case protoICMPv6:
		ck = l4 + 2
	}
	if ck != 0 && ck+2 <= p.end {
		old := be.Uint16(f[ck:])
		if f[q+6] == protoUDP {
			csumApplyUDP(f[ck:], delta)
		} else {
			csumApply(f[ck:], delta)
		}
		icmp = csumAdd16(icmp, old, be.Uint16(f[ck:]))
	}
	return icmp, true
}

// setSrc6 is setSrc for IPv6.
func setSrc6(f []byte, p *ippkt, src []byte) {
	ip := p.ip
	delta := csumAdd128(0, f[ip+8:ip+24], src)
	copy(f[ip+8:ip+24], src)
	l4Adjust(f, p, delta, 0)
}

// echoReply6 turns an ICMPv6 echo request into its reply in place. The
// swapped addresses leave the pseudo-header sum unchanged.
func echoReply6(f []byte, p *ippkt, mac [6]byte) {
	ip := p.ip
	var a [16]byte
	copy(a[:], f[ip+8:ip+24])
	copy(f[ip+8:ip+24], f[ip+24:ip+40])
	copy(f[ip+24:ip+40], a[:])
	f[ip+7] = 64
	oldT := be.Uint16(f[p.l4:])
	f[p.l4] = icmp6EchoReply
	csumApply(f[p.l4+2:], csumAdd16(0, oldT, be.Uint16(f[p.l4:])))
	copy(f[0:6], f[6:12])
	copy(f[6:12], mac[:])
}

// ndp handles a neighbor solicitation or advertisement.
func (d *Datapath) ndp(in int, f []byte, p *ippkt) int {
	l4 := p.l4
	if p.l4+24 > p.end || f[p.ip+7] != 255 || f[l4+1] != 0 {
		return d.drop(rBadNDP) // RFC 4861: hop limit 255, code 0
	}
	target := netip.AddrFrom16([16]byte(f[l4+8 : l4+24]))
	// The link-layer address option: source (1) in NS, target (2) in NA.
	var lla []byte
	for o := l4 + 24; o+8 <= p.end; {
		n := int(f[o+1]) * 8
		if n == 0 || o+n > p.end {
			return d.drop(rBadNDP)
		}
		if (f[o] == 1 || f[o] == 2) && n == 8 {
			lla = f[o+2 : o+8]
		}
		o += n
	}
	pt := &d.ports[in]
	src := netip.AddrFrom16([16]byte(f[p.ip+8 : p.ip+24]))
	if f[l4] == ndpNA {
		if n := pt.neigh.m[target]; n != nil && lla != nil {
			d.learn(in, n, lla)
		}
		return d.drop(rNDPOther)
	}
	// A solicitation.
	if !d.cur.isLocal6(uint8(in), target.AsSlice()) {
		return d.drop(rNDPOther)
	}
	if src.IsUnspecified() {
		return d.drop(rNDPOther) // duplicate address detection: we do not contest
	}
	n := pt.neigh.m[src]
	if n == nil {
		n = pt.neigh.entry(src)
	}
	if lla != nil {
		d.learn(in, n, lla)
	}
	dstMAC := f[6:12]
	if lla != nil {
		dstMAC = lla
	}
	var dm [6]byte
	copy(dm[:], dstMAC)
	na := d.ndpMessage(in, ndpNA, target, src, dm, target)
	if !d.tx.send(in, na) {
		return d.drop(rTxFull)
	}
	d.c.reasons[rNDPReplied]++
	d.sent(in, na)
	return -1
}

// ndpMessage builds a neighbor solicitation or advertisement about target
// from our address from to to (Ethernet dstMAC), with our link-layer
// address option. The buffer is reused: the caller sends it at once.
func (d *Datapath) ndpMessage(port int, typ uint8, target, to netip.Addr, dstMAC [6]byte, from netip.Addr) []byte {
	const ip, l4 = etherHdrLen, etherHdrLen + 40
	b := d.arpBuf[:l4+32]
	clear(b)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], d.ports[port].mac[:])
	be.PutUint16(b[12:], etherIPv6)
	b[ip] = 0x60
	be.PutUint16(b[ip+4:], 32)
	b[ip+6], b[ip+7] = protoICMPv6, 255
	f16, t16, g16 := from.As16(), to.As16(), target.As16()
	copy(b[ip+8:], f16[:])
	copy(b[ip+24:], t16[:])
	b[l4] = typ
	opt := byte(1) // source link-layer address
	if typ == ndpNA {
		be.PutUint32(b[l4+4:], 0x60000000) // solicited, override
		opt = 2                            // target link-layer address
	}
	copy(b[l4+8:], g16[:])
	b[l4+24], b[l4+25] = opt, 1
	copy(b[l4+26:], d.ports[port].mac[:])
	p := ippkt{v6: true, ip: ip, ihl: 40, l4: l4, end: l4 + 32, proto: protoICMPv6}
	be.PutUint16(b[l4+2:], csum(b[l4:l4+32], pseudoSum6(b, &p)))
	return b
}

// solicit6 sends a neighbor solicitation for n to its solicited-node
// multicast address, from our address on the same subnet.
func (d *Datapath) solicit6(port int, n *neigh) {
	pt := &d.ports[port]
	var from netip.Addr
	for _, pf := range pt.cfg.Prefixes {
		if pf.Addr().Is6() && (!from.IsValid() || pf.Contains(n.ip)) {
			from = pf.Addr()
		}
	}
	if !from.IsValid() {
		return
	}
	t := n.ip.As16()
	sn := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	mac := [6]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	n.tries++
	n.expires = d.now + retryInterval
	d.tx.send(port, d.ndpMessage(port, ndpNS, n.ip, sn, mac, from))
}

// pseudoSum6 is the unfolded sum of the IPv6 pseudo-header.
func pseudoSum6(f []byte, p *ippkt) uint32 { return pseudo(f, p, p.end-p.l4) }
