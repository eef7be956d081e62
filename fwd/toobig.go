package fwd

// Path MTU discovery through fwd. A packet longer than the egress port's
// MTU, and not a super-frame that can be cut, is dropped (larger_than_mtu);
// a router then tells the sender what fits, or the sender's path MTU
// discovery has nothing to go on and the connection hangs on its first
// large packet: ports of different MTUs are common in clouds (a GWLB
// carries 8500 bytes, an internet-facing ENI 1500). fwd answers as the
// address the sender wrote to (the rule's local address, so the sender
// accepts it and the target stays hidden):
//
//   - IPv4 with DF set: ICMP destination unreachable, fragmentation
//     needed (type 3 code 4), the next-hop MTU in bytes 6-7 (RFC 1191),
//     quoting the IP header and the first 8 bytes after it (RFC 792).
//     Without DF, where a router would fragment, the packet is dropped and
//     counted only: fwd does not fragment.
//   - IPv6: ICMPv6 packet too big (type 2), the MTU in bytes 4-7, quoting
//     as much of the packet as keeps the message within 1280 bytes
//     (RFC 4443).
//
// At most tooBigBurst messages per housekeeping interval (100 ms), as RFC
// 1812 §4.3.2.8 and RFC 4443 §2.4(f) ask: a flood of large packets cannot
// make fwd flood its sender.

const (
	tooBigBurst = 10
	icmp6TooBig = 2
	minMTU6     = 1280
)

// tooBig answers the sender of the IP packet p in f, received on port in,
// that does not fit mtu. It builds the message in d.icmpBuf and sends it
// out of the port the packet came in on.
func (d *Datapath) tooBig(in int, f []byte, p *ippkt, mtu int) {
	if d.tooBigTokens <= 0 || mtu <= 0 {
		return
	}
	if !p.v6 && f[p.ip+6]&0x40 == 0 {
		return // no DF: a router would fragment; fwd drops and counts
	}
	d.tooBigTokens--
	b := d.icmpBuf
	copy(b[0:6], f[6:12]) // back to the sender's MAC
	copy(b[6:12], d.ports[in].mac[:])
	const ip = etherHdrLen
	var n int
	if p.v6 {
		q := min(p.end-p.ip, minMTU6-40-8)
		n = ip + 40 + 8 + q
		be.PutUint16(b[12:], etherIPv6)
		clear(b[ip : ip+8])
		b[ip] = 0x60
		be.PutUint16(b[ip+4:], uint16(8+q))
		b[ip+6], b[ip+7] = protoICMPv6, 255
		copy(b[ip+8:ip+24], f[p.ip+24:p.ip+40]) // from the address it was sent to
		copy(b[ip+24:ip+40], f[p.ip+8:p.ip+24]) // to its sender
		l4 := ip + 40
		b[l4], b[l4+1], b[l4+2], b[l4+3] = icmp6TooBig, 0, 0, 0
		be.PutUint32(b[l4+4:], uint32(mtu))
		copy(b[l4+8:n], f[p.ip:p.ip+q])
		var hp ippkt
		hp.v6, hp.ip, hp.l4, hp.end, hp.proto = true, ip, l4, n, protoICMPv6
		be.PutUint16(b[l4+2:], csumFinish(sumBytes(b[l4:n], pseudo(b, &hp, n-l4))))
	} else {
		q := min(p.end-p.ip, p.ihl+8)
		n = ip + 20 + 8 + q
		be.PutUint16(b[12:], etherIPv4)
		clear(b[ip : ip+20])
		b[ip] = 0x45
		be.PutUint16(b[ip+2:], uint16(n-ip))
		b[ip+8], b[ip+9] = 64, protoICMP
		copy(b[ip+12:ip+16], f[p.ip+16:p.ip+20]) // from the address it was sent to
		copy(b[ip+16:ip+20], f[p.ip+12:p.ip+16]) // to its sender
		be.PutUint16(b[ip+10:], csumFinish(sumBytes(b[ip:ip+20], 0)))
		l4 := ip + 20
		b[l4], b[l4+1], b[l4+2], b[l4+3], b[l4+4], b[l4+5] = icmpUnreach, 4, 0, 0, 0, 0
		be.PutUint16(b[l4+6:], uint16(min(mtu, 0xffff)))
		copy(b[l4+8:n], f[p.ip:p.ip+q])
		be.PutUint16(b[l4+2:], csumFinish(sumBytes(b[l4:n], 0)))
	}
	if d.tx.send(in, b[:n]) {
		d.c.tooBigSent++
	}
}
