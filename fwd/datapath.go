package fwd

// The datapath is what happens to one received frame, independent of the
// backend that received it (afpacket.go, dpdk.go). It runs on one goroutine,
// which owns everything here except the table pointer and the published
// statistics. Per frame, in order:
//
//  1. ARP for our addresses is answered in place; ARP from known neighbors
//     updates them.
//  2. IPv4 is parsed (packet.go); anything else is counted and dropped.
//  3. The rule is looked up by (port, destination, source) in the table
//     loaded once per burst (table.go). No rule: an echo request to a local
//     address is answered; an ICMP error is matched by the header it
//     quotes; everything else is counted by reason and dropped.
//  4. The ingress copy goes into the ring (the frame as it crossed the
//     wire: a super-frame becomes one record per segment, gso.go).
//  5. Addresses and TTL are rewritten in place (rewrite.go), MACs set from
//     the neighbor entry; an unresolved neighbor queues a copy (neigh.go).
//  6. The egress copy (exactly as sent) or the inline copy (the egress frame
//     with the original source, showing A ↔ B) goes into the ring.
//
// The ring producer is Live: a full ring drops the copy and counts it, and
// forwarding goes on. Nothing here allocates or logs.

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/internal/sdnotify"
	"github.com/fmcap/fmcap/shmring"
)

const maxPorts = 256

// txer transmits a frame built outside a receive burst (ARP requests,
// packets released from a neighbor queue). It copies the frame.
type txer interface {
	send(port int, frame []byte) bool
}

type ruleCounters struct {
	pkts, bytes [2]uint64 // per direction
}

type portCounters struct {
	rxPkts, rxBytes, txPkts, txBytes uint64
	txStalls                         uint64 // episodes of a transmit queue the device took nothing from (backend)
	txStalled                        bool   // in one now
}

type counters struct {
	reasons      [rMax]uint64
	captured     uint64
	captureDrops uint64
	superFrames  uint64 // frames received with GSO metadata (gso.go)
	fastPath     uint64 // frames the kernel fast path forwarded (fastpath.go), also in reasons[rOK]
	tooBigSent   uint64 // ICMP "too big" messages sent (toobig.go)
	ports        []portCounters
	appliance    [aMax]uint64   // appliance roles (appliance.go)
	tunnel       [tunMax]uint64 // tunnel frames refused, by reason (tunnel.go)
}

// Datapath is the per-frame engine. Handle and the methods it calls belong
// to the poll goroutine; Swap, Stats and Table may be called from any.
type Datapath struct {
	tbl     atomic.Pointer[table] // store by Swap; load once per burst in Begin
	cur     *table
	bindTo  *table
	bind    []*ruleCounters // per rule index of cur
	byID    map[uint32]*ruleCounters
	nh      [][2]*neigh // per rule index of cur: next-hop entries
	ports   []dpPort
	ring    *shmring.Producer // nil: capture off
	tx      txer
	pool    *framePool
	scratch []byte
	seg     []byte // captured segments of a super-frame are built here
	arpBuf  []byte // ARP requests and NDP messages are built here
	icmpBuf []byte // ICMP "too big" messages are built here (toobig.go)
	// healthBuf: health-check answers are built here (appliance.go).
	healthBuf []byte
	// captureFailing: some captures were dropped in the last second (the
	// ring is full: its lossless consumer stopped or is slow);
	// lastDrops/dropsAt: the capture drops at the last housekeeping that saw
	// them grow, and when.
	captureFailing bool
	lastDrops      uint64
	dropsAt        int64
	// tooBigTokens: "too big" messages still allowed in this housekeeping
	// interval.
	tooBigTokens int

	// Offloads (gso.go). outMeta is the virtio_net_hdr the frame Handle
	// returned must be sent with (zero: none); when outGSO is set, plan
	// says how it is to be segmented where the backend cannot hand the
	// kernel or the NIC the metadata. keepGSO: capture a super-frame as
	// one record (capture_gso: keep) instead of its segments.
	outMeta vnet
	outGSO  bool
	plan    gsoPlan
	keepGSO bool
	now     int64
	next    int64 // next housekeeping
	c       counters

	// nic reads a port's receive drops from the backend; called on the
	// poll goroutine at each housekeeping.
	nic  func(port int) uint64
	last reason             // of the last frame Handle returned to send (see TxFailed)
	wd   *sdnotify.Watchdog // fed by housekeeping: a stuck poll loop starves it

	mu  sync.Mutex // guards pub
	pub Stats

	// The kernel fast path (fastpath.go): fpActive says one runs;
	// fpSynced is the table its map was last made from, so that an edit
	// waits until the kernel forwards by it (control.swap).
	fpActive atomic.Bool
	fpSynced atomic.Pointer[table]
}

type dpPort struct {
	mac   [6]byte
	mtu   int // IP bytes the port sends in one frame; 0: unknown (no check)
	cfg   Port
	neigh neighTable
}

// NewDatapath makes a datapath for the ports (their MACs from the backend)
// with an initial table. ring may be nil.
func NewDatapath(ports []Port, macs [][6]byte, t *table, ring *shmring.Producer, tx txer) *Datapath {
	d := &Datapath{
		ports:     make([]dpPort, len(ports)),
		ring:      ring,
		tx:        tx,
		pool:      newFramePool(poolFrames),
		scratch:   make([]byte, maxSuper+64), // inline copies of frames up to 64 KiB (super-frames)
		seg:       make([]byte, maxSuper+64),
		arpBuf:    make([]byte, 90),
		icmpBuf:   make([]byte, etherHdrLen+minMTU6),
		healthBuf: make([]byte, etherHdrLen+20+20+256),
		byID:      map[uint32]*ruleCounters{},
	}
	for i := range ports {
		d.ports[i] = dpPort{mac: macs[i], cfg: ports[i], neigh: neighTable{m: map[netip.Addr]*neigh{}}}
		for a, mac := range ports[i].Static {
			n := d.ports[i].neigh.entry(a)
			n.mac, n.state, n.static = mac, nReachable, true
		}
	}
	d.c.ports = make([]portCounters, len(ports))
	d.tbl.Store(t)
	return d
}

// SetMTU sets the largest IP packet port sends in one frame (the device's
// MTU). Longer frames without offload metadata are dropped and counted;
// super-frames are segmented to fit.
func (d *Datapath) SetMTU(port, mtu int) { d.ports[port].mtu = mtu }

// Swap installs a new table. The datapath picks it up at its next burst.
func (d *Datapath) Swap(t *table) { d.tbl.Store(t) }

// Table is the table in force (or about to be).
func (d *Datapath) Table() *table { return d.tbl.Load() }

// Begin starts a burst at time now (ns): it loads the table and, at most
// every 100 ms, does the housekeeping (ARP retries and ageing, statistics).
func (d *Datapath) Begin(now int64) {
	d.now = now
	if t := d.tbl.Load(); t != d.bindTo { // load-acquire; pairs with the store in Swap
		d.rebind(t)
	}
	if now >= d.next {
		d.next = now + int64(100e6)
		d.housekeep()
	}
}

// End finishes a burst: captured records become visible to consumers.
func (d *Datapath) End() {
	if d.ring != nil {
		d.ring.Publish()
	}
}

// rebind prepares per-rule state for a new table: counters carried over by
// rule id, neighbor entries created for every next hop (resolution starts
// now, before the first packet needs it).
func (d *Datapath) rebind(t *table) {
	d.cur, d.bindTo = t, t
	d.bind = make([]*ruleCounters, len(t.rules))
	d.nh = make([][2]*neigh, len(t.rules))
	for i := range t.rules {
		r := &t.rules[i]
		c := d.byID[r.id]
		if c == nil {
			c = &ruleCounters{}
			d.byID[r.id] = c
		}
		d.bind[i] = c
		for dir := 0; dir < 2; dir++ {
			p := int(r.outPort[dir])
			n := d.ports[p].neigh.entry(r.nextHop[dir])
			d.nh[i][dir] = n
			if n.state == nIncomplete && n.tries == 0 && !n.static {
				d.solicit(p, n)
			}
		}
	}
}

func (d *Datapath) drop(r reason) int {
	d.c.reasons[r]++
	return -1
}

// Handle processes one frame received on port in, in place. wire is the
// frame's length on the wire (len(f) unless the backend cut it). It
// returns the port to transmit f on, or -1 when f is not to be sent.
func (d *Datapath) Handle(in int, f []byte, wire int) int {
	return d.HandleMeta(in, f, wire, vnet{})
}

// HandleMeta is Handle for a frame received with offload metadata m (a
// super-frame, or a partial checksum). The frame to send then carries
// d.outMeta.
func (d *Datapath) HandleMeta(in int, f []byte, wire int, m vnet) int {
	d.outMeta, d.outGSO = vnet{}, false
	pc := &d.c.ports[in]
	pc.rxPkts++
	pc.rxBytes += uint64(wire)
	if wire != len(f) {
		return d.drop(rShort) // cut by the receive ring: cannot forward a part
	}
	if d.ports[in].cfg.Appliance != nil {
		return d.appliance(in, f, m)
	}
	switch etherType(f) {
	case etherIPv4:
	case etherARP:
		return d.arp(in, f)
	case etherIPv6:
		return d.handle6(in, f, m)
	case etherVLAN, etherQinQ:
		return d.drop(rVLAN)
	case 0:
		return d.drop(rShort)
	default:
		return d.drop(rNotIPv4)
	}
	var p ippkt
	if r := parseIPv4(f, &p); r != rOK {
		return d.drop(r)
	}
	if rs := d.ourMAC(in, f); rs != rOK {
		return d.drop(rs)
	}
	if rs := finishPartial(f, &p, &m); rs != rOK {
		return d.drop(rs)
	}
	if p.proto == protoICMP && p.l4 != 0 && !p.frag && p.l4+8 <= p.end && f[p.l4] == icmpRedirect {
		// A redirect names a better first hop on the sender's own link. Passed
		// through, it would hand the other side a gateway address from this
		// side (which RFC 1122 3.2.2.2 has it discard, or a lax stack obey);
		// fwd's next hops are static, so it does not act on one either.
		return d.drop(rICMPRedirect)
	}
	dst, src := be.Uint32(f[p.ip+16:]), be.Uint32(f[p.ip+12:])
	t := d.cur
	r, dir, ok := t.lookup(uint8(in), dst, src)
	outer := true
	if !ok && !t.isLocal(uint8(in), dst) {
		if r, ok = t.route(uint8(in), dst); ok && t.isLocalAny(dst) {
			ok = false // fwd's own address on another port: not routed
		}
		if !ok {
			return d.drop(rNotLocal)
		}
		dir = dirForward
	}
	if !ok {
		if p.proto != protoICMP || p.l4 == 0 || p.frag || p.l4+8 > p.end {
			return d.drop(rNoRule)
		}
		switch typ := f[p.l4]; {
		case typ == icmpEchoRequest:
			echoReply(f, &p, d.ports[in].mac)
			d.answered(rEchoLocal)
			return d.sent(in, f)
		case isICMPError(typ) && p.l4+28 <= p.end:
			q := p.l4 + 8 // quoted header: our own packet, from local qs to remote qd
			qs, qd := be.Uint32(f[q+12:]), be.Uint32(f[q+16:])
			if qs != dst {
				return d.drop(rBadICMPError)
			}
			if r, dir, ok = t.lookup(uint8(in), qs, qd); !ok {
				return d.drop(rNoRule)
			}
			outer = false
		default:
			return d.drop(rNoRule)
		}
	}
	if f[p.ip+8] <= 1 {
		return d.drop(rTTL)
	}
	if p.ihl > 20 {
		if rs := ipOptions(f, &p); rs == rSourceRoute || rs == rBadIPHeader || rs == rIPOptions && !r.ipOptions {
			return d.drop(rs)
		}
	}
	g, rs := d.offload(f, &p, r, dir, m)
	if rs != rOK {
		if rs == rTooBig {
			d.tooBig(in, f, &p, d.ports[r.outPort[dir]].mtu)
		}
		return d.drop(rs)
	}
	if r.mode == ModeIngress || r.mode == ModeBoth {
		d.capture(f, wire, in, shmring.DirIngress, r, g)
	}
	if r.route {
		decTTL(f, &p)
	} else if rs := rewrite(f, &p, r, dir, outer); rs != rOK {
		return d.drop(rs)
	}
	var orig [16]byte
	be.PutUint32(orig[:], src)
	return d.finish(f, r, dir, &orig, &p, g)
}

// ourMAC refuses a frame to be routed that was not addressed to port in's
// own MAC: a router forwards neither link-layer broadcasts and multicasts
// nor frames meant for another host on the link (RFC 1812 §5.3.4).
func (d *Datapath) ourMAC(in int, f []byte) reason {
	if [6]byte(f[0:6]) == d.ports[in].mac {
		return rOK
	}
	if f[0]&1 != 0 {
		return rL2Multicast
	}
	return rForeignMAC
}

// offload checks a frame against the egress port's MTU, and a super-frame's
// metadata against its headers (planning its segments). It returns the plan
// for a super-frame, nil for a plain frame.
func (d *Datapath) offload(f []byte, p *ippkt, r *crule, dir uint8, m vnet) (*gsoPlan, reason) {
	if m.gsoType == gsoNone {
		if mtu := d.ports[r.outPort[dir]].mtu; mtu > 0 && p.end-etherHdrLen > mtu {
			return nil, rTooBig
		}
		return nil, rOK
	}
	if rs := planGSO(f, p, &m, &d.plan); rs != rOK {
		return nil, rs
	}
	d.c.superFrames++
	return &d.plan, rOK
}

// finish sends a rewritten frame towards its next hop (or queues it) and
// puts its egress copy. g is the plan of a super-frame (nil for others).
func (d *Datapath) finish(f []byte, r *crule, dir uint8, orig *[16]byte, p *ippkt, g *gsoPlan) int {
	idx := r.idx
	ctr := d.bind[idx]
	out := int(r.outPort[dir])
	n := d.nh[idx][dir]
	copy(f[6:12], d.ports[out].mac[:])
	if !n.usable() {
		if g != nil {
			return d.drop(rNeighFull) // the queue holds MTU-sized frames; TCP sends it again
		}
		return d.enqueue(out, n, f, r, ctr, dir, orig)
	}
	copy(f[0:6], n.mac[:])
	if g != nil {
		if rs := g.clamp(d.ports[out].mtu); rs != rOK {
			return d.drop(rs)
		}
		d.outMeta, d.outGSO = g.meta(), true
		seedPartial(f, p, int(d.outMeta.csumOffset))
	}
	d.egress(f, out, r, dir, orig, p, g)
	ctr.pkts[dir]++
	ctr.bytes[dir] += uint64(len(f))
	d.answered(rOK)
	return d.sent(out, f)
}

// answered counts a reply fwd sends back itself (ARP, NDP, echo) under
// its reason, and remembers the reason in case the backend cannot send it.
func (d *Datapath) answered(r reason) {
	d.c.reasons[r]++
	d.last = r
}

// sent returns out, the port f is to be sent on. It counts nothing: a
// port's TX counters count what the device took, which the backend reports
// (TxTaken) when it knows.
func (d *Datapath) sent(out int, f []byte) int { return out }

// TxTaken counts frames the device (kernel or PMD) took from port's
// transmit queue.
func (d *Datapath) TxTaken(port int, pkts, bytes uint64) {
	pc := &d.c.ports[port]
	pc.txPkts += pkts
	pc.txBytes += bytes
}

// TxFailed is called by the backend when a frame of n bytes that Handle
// returned for port out could not be transmitted.
//
// The frame was counted under the reason of the last frame Handle returned
// (forwarded, or a reply); called right after Handle, that is exact. DPDK learns of refusals per burst and calls it
// after the burst: the count per reason is then approximate, the total is
// not.
func (d *Datapath) TxFailed(out int, n int) { d.TxRefused(rTxFull) }

// TxRefused is TxFailed with the backend's reason (a full queue, or a
// frame the device would refuse).
func (d *Datapath) TxRefused(r reason) { d.refusedAs(r, d.last) }

// refusedAs counts a frame the backend could not send under r instead of
// was, what Handle counted it as (wasNothing: it counted nothing). The
// AF_PACKET backend learns of refusals after the burst, and remembers
// each frame's was.
func (d *Datapath) refusedAs(r, was reason) {
	d.c.reasons[r]++
	if was < rMax && d.c.reasons[was] > 0 {
		d.c.reasons[was]--
	}
}

// egress puts the egress or inline copy of a frame about to be sent.
// orig is the packet's original source address (IPv4 in its first 4 bytes).
// p is f's parse when the caller has it (nil: parse again); the frame's
// length and headers are the same after the rewrite, so its offsets hold.
func (d *Datapath) egress(f []byte, out int, r *crule, dir uint8, orig *[16]byte, p *ippkt, g *gsoPlan) {
	switch r.mode {
	case ModeEgress, ModeBoth:
		d.capture(f, len(f), out, shmring.DirEgress, r, g)
	case ModeInline:
		if d.ring == nil {
			return
		}
		if len(f) > len(d.scratch) {
			d.c.captureDrops++ // larger than any frame a port delivers: never here
			return
		}
		s := d.scratch[:len(f)]
		copy(s, f)
		var q ippkt
		if p == nil {
			p = &q
			var rs reason
			if r.v6 {
				rs = parseIPv6(s, p)
			} else {
				rs = parseIPv4(s, p)
			}
			if rs != rOK {
				p = nil
			}
		}
		if p != nil {
			if r.v6 {
				setSrc6(s, p, orig[:])
			} else {
				setSrc(s, p, be.Uint32(orig[:]))
			}
		}
		d.capture(s, len(s), out, shmring.DirInline, r, g)
	}
}

// capture puts a copy of f into the ring: a plain frame as it is, a
// super-frame (g) as the segments that cross the wire, or as one record
// with its checksum finished when keepGSO is set.
func (d *Datapath) capture(f []byte, wire, port int, dir shmring.Dir, r *crule, g *gsoPlan) {
	if d.ring == nil {
		return
	}
	if g == nil {
		d.capture1(f, wire, port, dir, r, nil)
		return
	}
	if d.keepGSO {
		s := d.seg[:len(f)]
		copy(s, f)
		finishL4(s, &g.p)
		d.capture1(s, len(s), port, dir, r, nil)
		return
	}
	for k := 0; k < g.n; k++ {
		n := g.build(f, k, d.seg)
		d.capture1(d.seg[:n], n, port, dir, r, nil)
	}
}

// capture1 writes one record; o (nil: none) is the tunnel the packet came
// through (appliance.go), kept with it.
func (d *Datapath) capture1(f []byte, wire, port int, dir shmring.Dir, r *crule, o *origin.Origin) {
	if uint32(len(f)) > r.snap {
		f = f[:r.snap]
	}
	if _, ok := d.ring.WriteOrigin(d.now, uint32(wire), uint16(port), dir, r.id, o, f); ok {
		d.c.captured++
	} else {
		d.c.captureDrops++
	}
}

// enqueue holds a copy of a rewritten frame until its next hop resolves.
func (d *Datapath) enqueue(out int, n *neigh, f []byte, r *crule, ctr *ruleCounters, dir uint8, orig *[16]byte) int {
	if n.qn == queueLen || len(f) > maxFrame {
		return d.drop(rNeighFull)
	}
	b := d.pool.get()
	if b == nil {
		return d.drop(rNeighFull)
	}
	b = b[:len(f)]
	copy(b, f)
	n.q[n.qn] = queued{buf: b, rule: r, ctr: ctr, dir: dir, orig: *orig}
	n.qn++
	if n.tries == 0 || n.state != nIncomplete {
		d.solicit(out, n)
	}
	return d.drop(rNeighQueued)
}

// release sends what waits for n, now that its MAC is known.
func (d *Datapath) release(port int, n *neigh) {
	for i := 0; i < n.qn; i++ {
		q := &n.q[i]
		copy(q.buf[0:6], n.mac[:])
		d.egress(q.buf, port, q.rule, q.dir, &q.orig, nil, nil)
		if d.tx.send(port, q.buf) {
			q.ctr.pkts[q.dir]++
			q.ctr.bytes[q.dir] += uint64(len(q.buf))
			d.c.reasons[rOK]++
		} else {
			d.c.reasons[rTxFull]++
		}
		d.pool.put(q.buf)
		*q = queued{}
	}
	n.qn = 0
}

// flush drops what waits for n (it did not answer).
func (d *Datapath) flush(n *neigh) {
	for i := 0; i < n.qn; i++ {
		d.pool.put(n.q[i].buf)
		n.q[i] = queued{}
		d.c.reasons[rNeighFailed]++
	}
	n.qn = 0
}

// arp answers requests for our addresses (in place) and learns from any ARP
// packet whose sender we have an entry for.
func (d *Datapath) arp(in int, f []byte) int {
	const a = etherHdrLen
	if len(f) < a+28 {
		return d.drop(rBadARP)
	}
	if be.Uint16(f[a:]) != 1 || be.Uint16(f[a+2:]) != etherIPv4 || f[a+4] != 6 || f[a+5] != 4 {
		return d.drop(rBadARP)
	}
	op := be.Uint16(f[a+6:])
	spa, tpa := be.Uint32(f[a+14:]), be.Uint32(f[a+24:])
	pt := &d.ports[in]
	forUs := op == 1 && d.cur.isLocal(uint8(in), tpa)
	if n := pt.neigh.m[addr4(spa)]; n != nil || forUs {
		if n == nil {
			n = pt.neigh.entry(addr4(spa))
		}
		if spa != 0 {
			d.learn(in, n, f[a+8:a+14])
		}
	}
	if !forUs {
		return d.drop(rARPOther)
	}
	// Reply in place: swap sender and target, our MAC as sender.
	copy(f[0:6], f[a+8:a+14])
	copy(f[6:12], pt.mac[:])
	be.PutUint16(f[a+6:], 2)
	copy(f[a+18:a+28], f[a+8:a+18]) // target := old sender (MAC and IP)
	copy(f[a+8:a+14], pt.mac[:])
	be.PutUint32(f[a+14:], tpa)
	d.answered(rARPReplied)
	return d.sent(in, f)
}

// solicit sends an ARP request for n on port, from our address on the same
// subnet (or the port's first address).
func (d *Datapath) solicit(port int, n *neigh) {
	if n.ip.Is6() {
		d.solicit6(port, n)
		return
	}
	pt := &d.ports[port]
	var spa uint32
	first := true
	for _, pf := range pt.cfg.Prefixes {
		if pf.Addr().Is4() && (first || pf.Contains(n.ip)) {
			spa, first = ip4(pf.Addr()), false
		}
	}
	b := d.arpBuf[:60]
	clear(b)
	for i := 0; i < 6; i++ {
		b[i] = 0xff
	}
	copy(b[6:12], pt.mac[:])
	be.PutUint16(b[12:], etherARP)
	const a = etherHdrLen
	be.PutUint16(b[a:], 1)
	be.PutUint16(b[a+2:], etherIPv4)
	b[a+4], b[a+5] = 6, 4
	be.PutUint16(b[a+6:], 1)
	copy(b[a+8:], pt.mac[:])
	be.PutUint32(b[a+14:], spa)
	be.PutUint32(b[a+24:], ip4(n.ip))
	n.tries++
	n.expires = d.now + retryInterval
	d.tx.send(port, b)
}

// housekeep retries and ages neighbor entries, then publishes statistics.
func (d *Datapath) housekeep() {
	d.tooBigTokens = tooBigBurst
	if d.c.captureDrops != d.lastDrops {
		d.lastDrops, d.dropsAt = d.c.captureDrops, d.now
	}
	d.captureFailing = d.dropsAt != 0 && d.now-d.dropsAt < int64(time.Second)
	for pi := range d.ports {
		pt := &d.ports[pi]
		for _, n := range pt.neigh.m {
			if n.static || d.now < n.expires {
				continue
			}
			switch {
			case n.state == nReachable:
				n.state, n.tries = nStale, 0
				d.solicit(pi, n)
			case n.tries < maxTries:
				if n.qn > 0 || n.state == nStale || d.referenced(pi, n) {
					d.solicit(pi, n)
				} else {
					delete(pt.neigh.m, n.ip)
				}
			default:
				// No answer: forget the MAC, drop what waited. A referenced
				// entry is asked again after a pause, as Linux does.
				n.state = nIncomplete
				d.flush(n)
				if d.referenced(pi, n) {
					n.tries = 0
					n.expires = d.now + 5*retryInterval
				} else {
					delete(pt.neigh.m, n.ip)
				}
			}
		}
	}
	d.publish()
	d.wd.Ping(time.Unix(0, d.now))
}

// referenced says whether a rule of the current table uses n as next hop.
func (d *Datapath) referenced(port int, n *neigh) bool {
	for _, nh := range d.nh {
		if nh[0] == n || nh[1] == n {
			return true
		}
	}
	return false
}
