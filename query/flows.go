package query

// Flow evaluation: a filter decided on a flow's key alone, so that the
// flows of a range come from the index's flow tables without reading a
// packet, wherever the filter allows it.

import (
	"net/netip"

	"github.com/fmcap/fmcap/store/segment"
)

// MatchFlow evaluates the filter exactly on a flow's key: every packet of
// a flow shares it, so host, net, port, portrange, protocol and their
// combinations (not included) are decided without the packets.
func (p *Plan) MatchFlow(f *segment.FlowKey) bool {
	switch p.op {
	case 'a':
		return p.l.MatchFlow(f) && p.r.MatchFlow(f)
	case 'o':
		return p.l.MatchFlow(f) || p.r.MatchFlow(f)
	case 'n':
		return !p.l.MatchFlow(f)
	case 'A':
		return (f.Kind == segment.IPv6) == p.v6 && (f.A == p.addr || f.B == p.addr)
	case 'N':
		if p.net.Addr().Is4() {
			return f.Kind == segment.IPv4 && (p.net.Contains(netip.AddrFrom16(f.A).Unmap()) || p.net.Contains(netip.AddrFrom16(f.B).Unmap()))
		}
		return f.Kind == segment.IPv6 && (p.net.Contains(netip.AddrFrom16(f.A)) || p.net.Contains(netip.AddrFrom16(f.B)))
	case 'P', 'R':
		if !f.Ports || f.Proto != 6 && f.Proto != 17 && f.Proto != 132 {
			return false
		}
		hi := p.port
		if p.op == 'R' {
			hi = p.hi
		}
		return f.APort >= p.port && f.APort <= hi || f.BPort >= p.port && f.BPort <= hi
	case 'T':
		switch p.b {
		case 1:
			return f.Proto == 1 && f.Kind == segment.IPv4
		case 58:
			return f.Proto == 58 && f.Kind == segment.IPv6
		}
		return f.Proto == p.b
	case 'K':
		return byte(f.Kind) == p.b
	}
	return true // '*': no filter
}
