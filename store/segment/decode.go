package segment

// The packet decoder: what the index needs from a frame, without
// allocating. It walks Ethernet, 802.1Q/802.1ad tags, ARP, IPv4 (with
// options and fragments), IPv6 (with extension headers and fragments),
// and the ports of TCP, UDP and SCTP; ICMP and ICMPv6 are recognised by
// protocol. A frame cut short (snap length) yields what its bytes hold.
// Anything else is Kind Other.

import "encoding/binary"

// Kind is what the decoder recognised.
type Kind uint8

const (
	Other Kind = iota
	ARP
	IPv4
	IPv6
)

// Packet is the decoder's result. Addresses are 16 bytes, IPv4 mapped into
// IPv6 (::ffff:a.b.c.d) so one key space serves both.
type Packet struct {
	Kind     Kind
	VLAN     uint16 // outermost VLAN id, 0 when untagged
	Proto    uint8  // IP protocol (IPv6: the last next-header)
	Src, Dst [16]byte
	SPort    uint16
	DPort    uint16
	Ports    bool // the ports are valid (TCP, UDP or SCTP, first fragment)
	Frag     bool // a fragment (first or later)
	Addrs    bool // Src and Dst are both valid (the frame holds them)
	SrcOK    bool // Src is valid (a frame cut short may hold only the source)
	DstOK    bool
	// Cut: the frame ends inside a header the index reads (snap length):
	// libpcap may still match it on the bytes it has (a /64 on half an
	// address), so queries always read its group.
	Cut      bool
	First6   uint8  // IPv6: the fixed header's next header (libpcap's "ip6 proto")
	TCPFlags uint8  // valid for TCP with Ports
	later    bool   // a later fragment (no L4 header, by design)
	Wire     uint32 // length on the wire: set by the caller, for flow byte counts

	// Set by Builder.Prefetch: the flow key and its hash.
	keyed bool
	key   FlowKey
	hash  uint64
}

var v4prefix = [12]byte{10: 0xff, 11: 0xff}

// Map4 is an IPv4 address as the index keys it.
func Map4(a [4]byte) (m [16]byte) {
	copy(m[:], v4prefix[:])
	copy(m[12:], a[:])
	return m
}

// DecodePacket fills p from frame f. It never panics on any input.
func DecodePacket(f []byte, p *Packet) {
	decodePacket(f, p)
	switch p.Kind {
	case ARP:
		p.Cut = !p.Addrs
	case IPv4, IPv6:
		p.Cut = !p.Addrs || (p.Proto == 6 || p.Proto == 17 || p.Proto == 132) && !p.Ports && !p.later
	}
}

func decodePacket(f []byte, p *Packet) {
	*p = Packet{}
	be := binary.BigEndian
	if len(f) < 14 {
		return
	}
	et := be.Uint16(f[12:])
	off := 14
	for i := 0; (et == 0x8100 || et == 0x88a8) && i < 4; i++ {
		if len(f) < off+4 {
			p.Kind, p.Cut = Other, true
			return
		}
		if p.VLAN == 0 {
			p.VLAN = be.Uint16(f[off:]) & 0x0fff
		}
		et = be.Uint16(f[off+2:])
		off += 4
	}
	switch et {
	case 0x0806, 0x8035: // ARP, RARP: libpcap's "host" matches their addresses
		p.Kind = ARP // the EtherType is enough for libpcap's "arp"
		if len(f) >= off+18 {
			p.Src, p.SrcOK = Map4([4]byte(f[off+14:off+18])), true
		}
		if len(f) >= off+28 {
			p.Dst, p.DstOK = Map4([4]byte(f[off+24:off+28])), true
		}
		p.Addrs = p.SrcOK && p.DstOK
	case 0x0800:
		decode4(f[off:], p)
	case 0x86dd:
		decode6(f[off:], p)
	}
}

// decode4 reads what libpcap would read at the same offsets, even from a
// malformed header (bad version, IHL below 5): the index must hold every
// packet a filter can match, so it follows the filter's own arithmetic.
func decode4(b []byte, p *Packet) {
	p.Kind = IPv4 // libpcap's "ip" needs the EtherType alone, "udp" one byte more
	if len(b) < 10 {
		return
	}
	p.Proto = b[9]
	if len(b) >= 16 {
		p.Src, p.SrcOK = Map4([4]byte(b[12:16])), true
	}
	if len(b) < 20 {
		return
	}
	p.DstOK = true
	ihl := int(b[0]&15) * 4
	p.Src = Map4([4]byte(b[12:16]))
	p.Dst = Map4([4]byte(b[16:20]))
	p.Addrs = true
	fo := binary.BigEndian.Uint16(b[6:])
	p.Frag = fo&0x3fff != 0
	if fo&0x1fff != 0 {
		p.later = true
		return // a later fragment: no L4 header
	}
	if len(b) < ihl {
		return
	}
	l4(b[ihl:], p)
}

func decode6(b []byte, p *Packet) {
	p.Kind = IPv6
	if len(b) < 7 {
		return
	}
	p.First6, p.Proto = b[6], b[6]
	if len(b) >= 24 {
		copy(p.Src[:], b[8:24])
		p.SrcOK = true
	}
	if len(b) < 40 {
		return
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
				return
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
				return
			}
			p.Frag = true
			fo := binary.BigEndian.Uint16(b[off+2:]) & 0xfff8
			next, off = b[off], off+8
			if fo != 0 {
				p.Proto, p.later = next, true
				return
			}
			continue
		}
		break
	}
	p.Proto = next
	if off <= len(b) {
		l4(b[off:], p)
	}
}

func l4(b []byte, p *Packet) {
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
