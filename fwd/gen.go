package fwd

// fwd --bench-gen N: the no-kernel benchmark. With the DPDK backend and
// port 0 a ring pair ("ringpair:NAME": fwd fills its receive ring and
// frees what it transmits, as a NIC's completions would) or a net_ring
// loopback (what it transmits comes back in), and, say, net_null as port
// 1, fwd injects N copies of a 64-byte TCP frame from the first rule's
// peer to its local address (or, port 0 a GWLB appliance port, a GENEVE
// frame: gwlbBenchFrame), forwards them by the table like any other
// packet, captures them per the rule's mode, and exits when all came back
// through, printing the rate and the frames received on every port (N
// with a ring pair; 2N for a GWLB port on a loopback, whose returns come
// back). The generator's own cost (mbuf allocation and a copy per packet,
// and freeing what was sent) is inside the measured time.

import (
	"fmt"
	"net/netip"
	"time"
)

// ringPairPrefix names a benchmark port made of two rte_rings
// ("ringpair:g0", DPDK backend, port 0 only): fwd --bench-gen fills its
// receive ring and empties its transmit ring, so a GWLB appliance port's
// returns leave fwd as they would on a NIC instead of coming back in as on
// a net_ring loopback.
const ringPairPrefix = "ringpair:"

type genState struct {
	frame       []byte
	left        int
	first, last time.Time
}

// genner is implemented by backends that can generate (DPDK).
type genner interface {
	setGen(frame []byte, n int) *genState
}

// benchFrame is a valid 64-byte TCP frame that rule r's peer sends to its
// local address, to port in's MAC.
func benchFrame(r Rule, mac [6]byte) []byte {
	f := make([]byte, 64)
	copy(f[0:6], mac[:])
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0xaa})
	be.PutUint16(f[12:], etherIPv4)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, protoTCP
	be.PutUint16(ip[2:], 50)
	a, x := r.Peer.As4(), r.Local.As4()
	copy(ip[12:], a[:])
	copy(ip[16:], x[:])
	be.PutUint16(ip[10:], csum(ip[:20], 0))
	tcp := ip[20:]
	be.PutUint16(tcp[0:], 40000)
	be.PutUint16(tcp[2:], 443)
	tcp[12], tcp[13] = 5<<4, 0x10
	be.PutUint16(tcp[14:], 500)
	copy(tcp[20:], "0123456789")
	var p ippkt
	parseIPv4(f, &p)
	be.PutUint16(tcp[16:], csum(f[p.l4:p.end], pseudoSum(f, &p)))
	return f
}

// gwlbBenchFrame is a GENEVE frame as GWLB sends it to port p (a GWLB
// appliance port, at mac): outer IPv4 from the next address of the port's
// subnet, UDP 6081 (checksum 0), the three GWLB options, and inside a
// 50-byte TCP packet (a 64-byte frame's). The appliance returns it on the
// same port: out of a ring pair, or, on a net_ring loopback, back in, to
// another MAC, where it is dropped as foreign_mac (two receives a frame).
func gwlbBenchFrame(p Port, mac [6]byte) []byte {
	inner := benchFrame(Rule{Peer: netip.AddrFrom4([4]byte{198, 18, 0, 2}), Local: netip.AddrFrom4([4]byte{198, 18, 2, 2})}, mac)[etherHdrLen:]
	opts := []byte{
		0x01, 0x08, gwlbOptEndpoint, 2, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		0x01, 0x08, gwlbOptAttachment, 2, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
		0x01, 0x08, gwlbOptCookie, 1, 0x5e, 0xed, 0x12, 0x34,
	}
	n := etherHdrLen + 20 + udpHdrLen + geneveHdrLen + len(opts) + len(inner)
	f := make([]byte, n)
	copy(f[0:6], mac[:])
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0xaa})
	be.PutUint16(f[12:], etherIPv4)
	ip := f[etherHdrLen:]
	ip[0], ip[8], ip[9] = 0x45, 64, protoUDP
	be.PutUint16(ip[2:], uint16(n-etherHdrLen))
	var x [4]byte
	for _, pf := range p.Prefixes {
		if pf.Addr().Is4() {
			x = pf.Addr().As4() // GENEVE comes to an IPv4 address
			break
		}
	}
	g := x
	g[3]++
	copy(ip[12:], g[:])
	copy(ip[16:], x[:])
	be.PutUint16(ip[10:], csum(ip[:20], 0))
	u := ip[20:]
	be.PutUint16(u[0:], geneveUDPPort)
	be.PutUint16(u[2:], geneveUDPPort)
	be.PutUint16(u[4:], uint16(n-etherHdrLen-20))
	gh := u[udpHdrLen:]
	gh[0] = byte(len(opts) / 4)
	be.PutUint16(gh[2:], etherIPv4)
	copy(gh[geneveHdrLen:], opts)
	copy(gh[geneveHdrLen+len(opts):], inner)
	return f
}

func genReport(g *genState, n int, s Stats) string {
	dt := g.last.Sub(g.first)
	var rx uint64
	for _, p := range s.Ports {
		rx += p.RxPackets
	}
	return fmt.Sprintf("generated %d, received %d, forwarded %d, captured %d, capture drops %d in %v: %.2f Mpps",
		n, rx, s.Forwarded, s.Captured, s.CaptureDrops, dt.Round(time.Microsecond), float64(s.Forwarded)/dt.Seconds()/1e6)
}
