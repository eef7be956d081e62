package segment

// Packet: what one packet gives the index, the Builder's input. The
// decoder that fills it from a frame is query.DecodePacket.

// Kind is what the decoder recognised (also a flow's kind, and the 'K'
// terms' key).
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
	Wire     uint32 // length on the wire: set by the caller, for flow byte counts
	// Origin: where it was captured (port, direction, rule, tunnel), set
	// by the caller from the ring record or the chunk's metadata (the
	// decoder sees only bytes); the zero value says unknown.
	Origin Origin

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
