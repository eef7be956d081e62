package fwd

// Neighbor resolution (ARP for IPv4, NDP for IPv6), as a host on the subnet would do it. fwd owns
// its ports, so the kernel does none of this for it.
//
// An entry is created for every next hop a rule names (the destination, or
// the port's gateway for destinations off the subnet), and for every host
// that asks us for one of our addresses. States:
//
//	incomplete  no MAC yet: an ARP request goes out every retryInterval, up
//	            to maxTries; packets wait in a small queue (queueLen per
//	            entry, copied into buffers allocated at start) and are sent
//	            when the reply comes, or dropped and counted if none does.
//	reachable   MAC known and confirmed less than reachableTime ago.
//	stale       MAC known but old: still used, and refreshed by requests; a
//	            neighbor that stops answering goes back to incomplete.
//
// Any ARP packet from a host with an entry updates its MAC (gratuitous ARP
// after a failover in a VPC is taken at once).

import (
	"net/netip"
	"time"
)

const (
	queueLen      = 8
	maxTries      = 3
	retryInterval = int64(time.Second)
	reachableTime = int64(30 * time.Second)
	poolFrames    = 512
	maxFrame      = 9216 + etherHdrLen + 4
)

const (
	nIncomplete uint8 = iota
	nReachable
	nStale
)

type neigh struct {
	ip      netip.Addr
	mac     [6]byte
	state   uint8
	tries   uint8
	static  bool  // from the configuration: never aged, never replaced
	expires int64 // reachable until (reachable); next request (others)
	qn      int
	q       [queueLen]queued
}

type queued struct {
	buf  []byte // from the pool; nil when free
	rule *crule // for the egress capture when sent
	ctr  *ruleCounters
	dir  uint8
	orig [16]byte // original source, for inline captures
}

type neighTable struct {
	m map[netip.Addr]*neigh
}

// framePool holds the buffers queued packets are copied into.
type framePool struct{ free [][]byte }

func newFramePool(n int) *framePool {
	p := &framePool{free: make([][]byte, n)}
	mem := make([]byte, n*maxFrame)
	for i := range p.free {
		p.free[i] = mem[i*maxFrame : (i+1)*maxFrame : (i+1)*maxFrame]
	}
	return p
}

func (p *framePool) get() []byte {
	if len(p.free) == 0 {
		return nil
	}
	b := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	return b
}

func (p *framePool) put(b []byte) { p.free = append(p.free, b[:cap(b)]) }

// entry returns the entry for ip, creating an incomplete one.
func (t *neighTable) entry(ip netip.Addr) *neigh {
	n := t.m[ip]
	if n == nil {
		n = &neigh{ip: ip, state: nIncomplete}
		t.m[ip] = n
	}
	return n
}

// learn takes mac as n's address (from ARP or NDP), unless n is pinned by
// the configuration, and sends what waited for it.
func (d *Datapath) learn(port int, n *neigh, mac []byte) {
	if n.static {
		return
	}
	copy(n.mac[:], mac)
	n.state, n.tries, n.expires = nReachable, 0, d.now+reachableTime
	if n.qn > 0 {
		d.release(port, n)
	}
}

// usable says whether the entry has a MAC to send to.
func (n *neigh) usable() bool { return n.state != nIncomplete }
