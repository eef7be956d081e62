package query

// The packet decoder: what the index needs from a frame, without
// allocating. It walks Ethernet, 802.1Q/802.1ad tags, ARP, IPv4 (with
// options and fragments), IPv6 (with extension headers and fragments),
// and the ports of TCP, UDP and SCTP; ICMP and ICMPv6 are recognised by
// protocol. A frame cut short (snap length) yields what its bytes hold.
// Anything else is Kind Other. The indexer decodes every packet with it
// (into a segment.Packet, the Builder's input) and fmslice the frames it
// scans, so both agree on what a packet is.

import (
	"encoding/binary"

	"github.com/fmcap/fmcap/store/segment"
)

// DecodePacket fills p from frame f. It never panics on any input.
func DecodePacket(f []byte, p *segment.Packet) {
	later := decodePacket(f, p)
	switch p.Kind {
	case segment.ARP:
		p.Cut = !p.Addrs
	case segment.IPv4, segment.IPv6:
		p.Cut = !p.Addrs || (p.Proto == 6 || p.Proto == 17 || p.Proto == 132) && !p.Ports && !later
	}
}

// decodePacket says whether the packet is a later fragment (no L4 header,
// by design).
func decodePacket(f []byte, p *segment.Packet) (later bool) {
	*p = segment.Packet{}
	be := binary.BigEndian
	if len(f) < 14 {
		return false
	}
	et := be.Uint16(f[12:])
	off := 14
	for i := 0; (et == 0x8100 || et == 0x88a8) && i < 4; i++ {
		if len(f) < off+4 {
			p.Kind, p.Cut = segment.Other, true
			return false
		}
		if p.VLAN == 0 {
			p.VLAN = be.Uint16(f[off:]) & 0x0fff
		}
		et = be.Uint16(f[off+2:])
		off += 4
	}
	switch et {
	case 0x0806, 0x8035: // ARP, RARP: libpcap's "host" matches their addresses
		p.Kind = segment.ARP // the EtherType is enough for libpcap's "arp"
		if len(f) >= off+18 {
			p.Src, p.SrcOK = segment.Map4([4]byte(f[off+14:off+18])), true
		}
		if len(f) >= off+28 {
			p.Dst, p.DstOK = segment.Map4([4]byte(f[off+24:off+28])), true
		}
		p.Addrs = p.SrcOK && p.DstOK
	case 0x0800:
		return decode4(f[off:], p)
	case 0x86dd:
		return decode6(f[off:], p)
	}
	return false
}

// decode4 reads what libpcap would read at the same offsets, even from a
// malformed header (bad version, IHL below 5): the index must hold every
// packet a filter can match, so it follows the filter's own arithmetic.
func decode4(b []byte, p *segment.Packet) (later bool) {
	p.Kind = segment.IPv4 // libpcap's "ip" needs the EtherType alone, "udp" one byte more
	if len(b) < 10 {
		return false
	}
	p.Proto = b[9]
	if len(b) >= 16 {
		p.Src, p.SrcOK = segment.Map4([4]byte(b[12:16])), true
	}
	if len(b) < 20 {
		return false
	}
	p.DstOK = true
	ihl := int(b[0]&15) * 4
	p.Src = segment.Map4([4]byte(b[12:16]))
	p.Dst = segment.Map4([4]byte(b[16:20]))
	p.Addrs = true
	fo := binary.BigEndian.Uint16(b[6:])
	p.Frag = fo&0x3fff != 0
	if fo&0x1fff != 0 {
		return true // a later fragment: no L4 header
	}
	if len(b) < ihl {
		return false
	}
	l4(b[ihl:], p)
	return false
}

func decode6(b []byte, p *segment.Packet) (later bool) {
	p.Kind = segment.IPv6
	if len(b) < 7 {
		return false
	}
	p.First6, p.Proto = b[6], b[6]
	if len(b) >= 24 {
		copy(p.Src[:], b[8:24])
		p.SrcOK = true
	}
	if len(b) < 40 {
		return false
	}
	p.DstOK = true
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	p.Addrs = true
	next, off := b[6], 40
	for i := 0; i < 8; i++ {
		switch next {
		case 0, 43, 60, 51: // hop-by-hop, routing, destination options, AH
			if len(b) < off+8 {
				p.Proto = next
				return false
			}
			n := (int(b[off+1]) + 1) * 8
			if next == 51 {
				n = (int(b[off+1]) + 2) * 4
			}
			next, off = b[off], off+n
			continue
		case 44: // fragment
			if len(b) < off+8 {
				p.Proto = next
				return false
			}
			p.Frag = true
			fo := binary.BigEndian.Uint16(b[off+2:]) & 0xfff8
			next, off = b[off], off+8
			if fo != 0 {
				p.Proto = next
				return true
			}
			continue
		}
		break
	}
	p.Proto = next
	if off <= len(b) {
		l4(b[off:], p)
	}
	return false
}

func l4(b []byte, p *segment.Packet) {
	switch p.Proto {
	case 6, 17, 132: // TCP, UDP, SCTP: ports first
		if len(b) < 4 {
			return
		}
		p.SPort = binary.BigEndian.Uint16(b)
		p.DPort = binary.BigEndian.Uint16(b[2:])
		p.Ports = true
		if p.Proto == 6 && len(b) >= 14 {
			p.TCPFlags = b[13]
		}
	}
}
