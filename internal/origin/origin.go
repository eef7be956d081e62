// Package origin is where a captured packet came from beyond its port,
// direction and rule: the tunnel that brought it to fwd. fwd writes it into
// the ring (shmring FORMAT), the writer keeps it in the chunk (store/chunk
// FORMAT, metadata frames), fmslice names pcapng interfaces and selects by
// it. The bytes are the same everywhere: a kind and a blob of up to Max
// bytes, big-endian as on the wire.
//
//	kind 1, GWLB (GENEVE, class 0x0108), 20 bytes:
//	  0  8  GWLB endpoint id (option type 1)
//	  8  8  attachment id (option type 2)
//	 16  4  flow cookie (option type 3)
//	kind 2, Traffic Mirroring (VXLAN), 7 or 19 bytes:
//	  0  3  VNI (the mirror session's virtual network id)
//	  3  4  outer source address, IPv4 (the mirrored ENI's address) ...
//	  3 16  ... or IPv6
//
// Any other kind, or a length that does not fit its kind, is refused by
// Parse: a reader says the origin is unknown rather than guess.
package origin

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Kind says which tunnel a packet came through.
type Kind uint8

const (
	None   Kind = 0 // not tunnelled (port, direction and rule say all)
	GWLB   Kind = 1 // a Gateway Load Balancer's GENEVE
	Mirror Kind = 2 // a Traffic Mirroring session's VXLAN
)

// Max is the longest blob (GWLB's).
const Max = 20

// Origin is a kind and its blob; the zero value is None. Comparable, so
// that it can key a map or be compared with ==.
type Origin struct {
	Kind Kind
	N    uint8
	B    [Max]byte
}

// Bytes is the blob.
func (o *Origin) Bytes() []byte { return o.B[:o.N] }

// FromGWLB is the origin of a packet a GWLB sent in GENEVE.
func FromGWLB(endpoint, attachment uint64, cookie uint32) Origin {
	o := Origin{Kind: GWLB, N: 20}
	binary.BigEndian.PutUint64(o.B[0:], endpoint)
	binary.BigEndian.PutUint64(o.B[8:], attachment)
	binary.BigEndian.PutUint32(o.B[16:], cookie)
	return o
}

// FromMirror is the origin of a packet mirrored in VXLAN with this VNI from
// this outer source address (4 or 16 bytes, as in the outer header).
func FromMirror(vni uint32, src []byte) Origin {
	o := Origin{Kind: Mirror, N: uint8(3 + len(src))}
	o.B[0], o.B[1], o.B[2] = byte(vni>>16), byte(vni>>8), byte(vni)
	copy(o.B[3:], src)
	return o
}

// Parse checks a kind and blob read from a ring record or a chunk.
func Parse(k Kind, b []byte) (Origin, error) {
	ok := false
	switch k {
	case None:
		ok = len(b) == 0
	case GWLB:
		ok = len(b) == 20
	case Mirror:
		ok = len(b) == 7 || len(b) == 19
	default:
		return Origin{}, fmt.Errorf("origin kind %d unknown", k)
	}
	if !ok {
		return Origin{}, fmt.Errorf("origin kind %d with %d bytes", k, len(b))
	}
	o := Origin{Kind: k, N: uint8(len(b))}
	copy(o.B[:], b)
	return o, nil
}

// GWLB returns the GENEVE identity of a GWLB origin.
func (o *Origin) GWLB() (endpoint, attachment uint64, cookie uint32, ok bool) {
	if o.Kind != GWLB || o.N != 20 {
		return 0, 0, 0, false
	}
	be := binary.BigEndian
	return be.Uint64(o.B[0:]), be.Uint64(o.B[8:]), be.Uint32(o.B[16:]), true
}

// Mirror returns the VNI and outer source of a mirror origin.
func (o *Origin) Mirror() (vni uint32, src netip.Addr, ok bool) {
	if o.Kind != Mirror || (o.N != 7 && o.N != 19) {
		return 0, netip.Addr{}, false
	}
	vni = uint32(o.B[0])<<16 | uint32(o.B[1])<<8 | uint32(o.B[2])
	src, _ = netip.AddrFromSlice(o.B[3:o.N])
	return vni, src, true
}

// Tunnel names the tunnel, as pcapng interface names do: "gwlb:<endpoint
// id, 16 hex digits>", "mirror:vni-<N>", "" for None.
func (o *Origin) Tunnel() string {
	if ep, _, _, ok := o.GWLB(); ok {
		return fmt.Sprintf("gwlb:%016x", ep)
	}
	if vni, _, ok := o.Mirror(); ok {
		return fmt.Sprintf("mirror:vni-%d", vni)
	}
	return ""
}

// String is the whole identity: "gwlb endpoint=… attachment=… cookie=…",
// "mirror vni=… src=…", "" for None.
func (o *Origin) String() string {
	if ep, at, ck, ok := o.GWLB(); ok {
		return fmt.Sprintf("gwlb endpoint=%016x attachment=%016x cookie=%08x", ep, at, ck)
	}
	if vni, src, ok := o.Mirror(); ok {
		return fmt.Sprintf("mirror vni=%d src=%s", vni, src)
	}
	return ""
}
