// Package query answers questions about the store from its index: the
// tcpdump-filter planner (plan.go), which turns a filter into the index
// groups that may hold a match; the index plan over a directory (index.go);
// flow evaluation, a filter decided on a flow's key (flows.go) and the
// flows of a range counted from the segments' flow tables and the packets
// read (flowcount.go); flow-exact plans, which narrow the term lists' groups
// to those of the flows that may match (flowplan.go); the timeline of a
// range from the segments' counts (timeline.go); and the packet decoder
// (decode.go) both the indexer and the queries use, so that they agree on
// what a packet is.
// fmslice, the indexer and a later query server share it; the formats it
// reads are store/segment's.
package query

// The query planner. It reads a tcpdump filter expression and keeps the
// parts an index can answer — host, src/dst host, net, port, src/dst port,
// portrange, tcp/udp/sctp/icmp/icmp6, ip/ip6/arp, ip proto N — combined
// with and, or, not and parentheses. For a segment it returns the groups
// that may hold a matching packet: always a superset, never a subset,
// because the caller applies the whole filter (libpcap) to every packet it
// reads. So everything the planner does not understand means "every
// group": a primitive it does not know, a negation (the complement of a
// superset is not a superset), a parse error. src/dst are answered by the
// address (or port) alone, which is a superset of either direction.
//
// tcpdump gives and and or the same precedence, left to right, and not
// binds tighter; so does this parser. ARP carries addresses too: libpcap's
// "host X" matches ARP packets about X, and the index keys their addresses
// alike.

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/fmcap/fmcap/store/segment"
)

// Plan is a parsed filter. A nil *Plan selects every group.
type Plan struct {
	op       byte // 'a' and, 'o' or, 'A' address, 'N' net, 'P' port, 'R' port range, 'T' proto, 'K' kind, '*' all
	l, r     *Plan
	addr     [16]byte
	net      netip.Prefix
	port, hi uint16
	b        byte
	v6       bool // 'A': the address was written as IPv6 (flows match IPv6 packets only)
}

var all = &Plan{op: '*'}

// ParsePlan parses a filter expression; an empty one selects everything.
// It never fails: what it cannot use becomes "every group".
func ParsePlan(expr string) *Plan {
	n, ok := ParseFilter(expr)
	if !ok {
		return all
	}
	return n
}

// ParseFilter is ParsePlan that also says whether the whole expression was
// understood (flows need that: they answer exactly or not at all).
func ParseFilter(expr string) (*Plan, bool) {
	toks := tokenize(expr)
	if len(toks) == 0 {
		return all, true
	}
	p := &parser{toks: toks}
	n, ok := p.expr()
	if !ok || p.i != len(p.toks) {
		return all, false
	}
	return n, true
}

// ParseExact is ParseFilter for answers that must be tcpdump's packet for
// packet: ok only when the whole expression was understood and holds no
// src or dst qualifier (which ParseFilter answers as either end). On the
// packets of a flow without a VLAN tag (and for IPv6 flows, a plan that
// names no protocol or port: libpcap reads IPv6's first next header, a
// flow keeps the last), MatchFlow is then libpcap's answer; see
// FlowExact.
func ParseExact(expr string) (*Plan, bool) {
	toks := tokenize(expr)
	if len(toks) == 0 {
		return all, true
	}
	p := &parser{toks: toks}
	n, ok := p.expr()
	if !ok || p.i != len(p.toks) || p.dir {
		return all, false
	}
	return n, true
}

// Indexed says whether the plan can narrow anything.
func (p *Plan) Indexed() bool {
	if p == nil {
		return false
	}
	switch p.op {
	case '*', 'n':
		return false
	case 'a':
		return p.l.Indexed() || p.r.Indexed()
	case 'o':
		return p.l.Indexed() && p.r.Indexed()
	}
	return true
}

func tokenize(s string) []string {
	var out []string
	cur := strings.Builder{}
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == '(' || c == ')':
			flush()
			out = append(out, string(c))
		case c == '!' && (i+1 >= len(s) || s[i+1] != '='):
			flush()
			out = append(out, "not")
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			flush()
			out = append(out, "and")
			i++
		case c == '|' && i+1 < len(s) && s[i+1] == '|':
			flush()
			out = append(out, "or")
			i++
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

type parser struct {
	toks []string
	i    int
	dir  bool // a src or dst qualifier was read (answered as either end)
}

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *parser) next() string { t := p.peek(); p.i++; return t }

func (p *parser) expr() (*Plan, bool) {
	l, ok := p.unary()
	if !ok {
		return nil, false
	}
	for {
		switch p.peek() {
		case "and":
			p.i++
			r, ok := p.unary()
			if !ok {
				return nil, false
			}
			l = &Plan{op: 'a', l: l, r: r}
		case "or":
			p.i++
			r, ok := p.unary()
			if !ok {
				return nil, false
			}
			l = &Plan{op: 'o', l: l, r: r}
		default:
			return l, true
		}
	}
}

func (p *parser) unary() (*Plan, bool) {
	switch p.peek() {
	case "not":
		p.i++
		n, ok := p.unary()
		if !ok {
			return nil, false
		}
		return &Plan{op: 'n', l: n}, true // for groups: every one (see Groups)
	case "(":
		p.i++
		n, ok := p.expr()
		if !ok || p.next() != ")" {
			return nil, false
		}
		return n, true
	}
	return p.primitive()
}

var protoNums = map[string]byte{"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmp6": 58}

// primitive parses [proto] [dir] [type] id, or a protocol alone.
func (p *parser) primitive() (*Plan, bool) {
	var proto *Plan
	switch t := p.peek(); t {
	case "tcp", "udp", "sctp", "icmp", "icmp6":
		p.i++
		proto = &Plan{op: 'T', b: protoNums[t]}
	case "ip", "ip6", "arp":
		p.i++
		proto = &Plan{op: 'K', b: map[string]byte{"ip": byte(segment.IPv4), "ip6": byte(segment.IPv6), "arp": byte(segment.ARP)}[t]}
		if p.peek() == "proto" {
			p.i++
			n, ok := protoNumber(p.next())
			if !ok || t == "arp" {
				return nil, false
			}
			return and(proto, &Plan{op: 'T', b: n})
		}
	}
	// Direction qualifiers narrow nothing here: the address or port alone
	// is a superset of either direction.
	switch p.peek() {
	case "src", "dst":
		p.i++
		p.dir = true
		if t := p.peek(); t == "or" || t == "and" {
			if p.i+1 < len(p.toks) && (p.toks[p.i+1] == "src" || p.toks[p.i+1] == "dst") {
				p.i += 2
			}
		}
	}
	switch t := p.peek(); t {
	case "host":
		p.i++
		h, ok := hostPlan(p.next())
		if !ok {
			return nil, false
		}
		return and(proto, h)
	case "net":
		p.i++
		n, ok := p.netPlan()
		if !ok {
			return nil, false
		}
		return and(proto, n)
	case "port":
		p.i++
		v, err := strconv.ParseUint(p.next(), 0, 16) // libpcap: 010 is octal, 0x10 hex
		if err != nil {
			return nil, false
		}
		return and(proto, &Plan{op: 'P', port: uint16(v)})
	case "portrange":
		p.i++
		lo, hi, ok := strings.Cut(p.next(), "-")
		a, e1 := strconv.ParseUint(lo, 0, 16)
		b, e2 := strconv.ParseUint(hi, 0, 16)
		if !ok || e1 != nil || e2 != nil {
			return nil, false
		}
		if a > b {
			a, b = b, a
		}
		return and(proto, &Plan{op: 'R', port: uint16(a), hi: uint16(b)})
	}
	if proto != nil {
		return proto, true // "tcp", "ip", ... alone
	}
	// A bare address (tcpdump's "host a or b", "src 1.2.3.4").
	if _, err := netip.ParseAddr(p.peek()); err == nil {
		return hostPlan(p.next())
	}
	return nil, false
}

func and(proto, n *Plan) (*Plan, bool) {
	if n == nil {
		return nil, false
	}
	if proto == nil {
		return n, true
	}
	return &Plan{op: 'a', l: proto, r: n}, true
}

func hostPlan(s string) (*Plan, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return nil, false
	}
	return &Plan{op: 'A', addr: a.As16(), v6: !a.Is4()}, true
}

func (p *parser) netPlan() (*Plan, bool) {
	s := p.next()
	if p.peek() == "mask" {
		p.i++
		m, err := netip.ParseAddr(p.next())
		a, err2 := netip.ParseAddr(s)
		if err != nil || err2 != nil || !m.Is4() || !a.Is4() {
			return nil, false
		}
		mb := m.As4()
		v := uint32(mb[0])<<24 | uint32(mb[1])<<16 | uint32(mb[2])<<8 | uint32(mb[3])
		bits := 0
		for bits < 32 && v&(1<<(31-bits)) != 0 {
			bits++
		}
		if bits < 32 && v<<bits != 0 {
			return nil, false // not contiguous: libpcap takes it, a prefix cannot say it
		}
		return &Plan{op: 'N', net: netip.PrefixFrom(a, bits).Masked()}, true
	}
	if !strings.Contains(s, "/") {
		// tcpdump takes "net 10" or "net 10.1" as a /8 or /16, and a full
		// address as a /32.
		parts := strings.Split(s, ".")
		for len(parts) < 4 {
			parts = append(parts, "0")
		}
		a, err := netip.ParseAddr(strings.Join(parts, "."))
		if err != nil {
			if a6, err6 := netip.ParseAddr(s); err6 == nil {
				return &Plan{op: 'N', net: netip.PrefixFrom(a6, 128)}, true
			}
			return nil, false
		}
		return &Plan{op: 'N', net: netip.PrefixFrom(a, 8*len(strings.Split(s, ".")))}, true
	}
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, false
	}
	return &Plan{op: 'N', net: pf.Masked()}, true
}

func protoNumber(s string) (byte, bool) {
	s = strings.TrimPrefix(s, "\\")
	if n, ok := protoNums[s]; ok {
		return n, true
	}
	v, err := strconv.ParseUint(s, 0, 8)
	return byte(v), err == nil
}

// Groups evaluates the plan on a segment.
func (p *Plan) Groups(s *segment.Segment) segment.Bits {
	if p == nil {
		return segment.Bits{All: true}
	}
	switch p.op {
	case '*', 'n': // not: the complement of a superset is not one
		return segment.Bits{All: true}
	case 'a', 'o':
		l, r := p.l.Groups(s), p.r.Groups(s)
		if p.op == 'a' {
			return l.And(r)
		}
		if l.All || r.All {
			return segment.Bits{All: true}
		}
		for i := range l.W {
			l.W[i] |= r.W[i]
		}
		return l
	}
	out := segment.NewBits(s.Groups())
	add := func(l []uint32) {
		for _, g := range l {
			out.Set(g)
		}
	}
	s.PostingsInto(segment.KindKind, []byte{segment.KeyCut}, out) // libpcap may match what the index could not read
	one := func(kind byte, key ...byte) { s.PostingsInto(kind, key, out) }
	switch p.op {
	case 'A':
		one(segment.KindAddr, p.addr[:]...)
	case 'T':
		one(segment.KindProto, p.b)
	case 'K':
		one(segment.KindKind, p.b)
	case 'P':
		one(segment.KindPort, byte(p.port>>8), byte(p.port))
	case 'R':
		s.Terms(segment.KindPort, func(k []byte, l func() []uint32) {
			if len(k) == 2 {
				if v := uint16(k[0])<<8 | uint16(k[1]); v >= p.port && v <= p.hi {
					add(l())
				}
			}
		})
	case 'N':
		s.Terms(segment.KindAddr, func(k []byte, l func() []uint32) {
			// IPv4 and IPv4-mapped IPv6 addresses share a key: try both.
			a := netip.AddrFrom16([16]byte(k))
			if len(k) == 16 && (p.net.Contains(a) || p.net.Contains(a.Unmap())) {
				add(l())
			}
		})
	}
	return out
}
