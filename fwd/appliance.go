package fwd

// Appliance roles: a port can be, instead of one end of 1-1 rules, a
// Gateway Load Balancer appliance (GENEVE in, the same packet back) or a
// Traffic Mirroring target (VXLAN in, nothing back). The tunnels' formats
// and their parsers are in tunnel.go; this file is what the datapath does
// with a parsed frame, and the health checks GWLB sends.
//
// A GWLB port answers, on its addresses:
//   - ARP, ICMP echo (as any port);
//   - GENEVE (UDP 6081): the options are checked (tunnel.go), the inner
//     packet captured, and the frame returned to the GWLB node it came from
//     (Ethernet and outer IP addresses swapped, UDP ports, GENEVE header and
//     every option kept: geneveReturn). Nothing of the flow is remembered:
//     the return is the received header, so no state, no allocation;
//   - the health check (TCP to health.port): see healthCheck below.
// Anything else to it is dropped and counted (not_appliance_traffic).
//
// A mirror port answers ARP and echo, captures the inner Ethernet frame of
// each VXLAN datagram (UDP 4789) with the original length the inner IP
// header gives (a session with a packet length setting cuts the packet and
// does not fix its headers), and sends nothing back.
//
// Captured inner packets: GWLB carries the inner packet from its L3
// header, with no Ethernet header, and the store keeps Ethernet frames. So
// the record is a 14-byte Ethernet header fwd makes (destination and
// source 00:00:00:00:00:00, EtherType 0x0800 or 0x86DD from GENEVE's
// protocol type) followed by the inner packet as received; its wire length
// is 14 + the inner packet's length. The header is written over the 14
// bytes before the inner packet (GENEVE options, which are put back at
// once), so the capture costs no copy beyond the ring's. A mirrored frame
// is recorded as it is. Both are recorded with the port they came in on,
// direction ingress and the role's rule id.
//
// Health and capture: forwarding never depends on capture (a writer that
// died makes the ring fill, and fwd counts capture drops and goes on
// returning packets: the appliance fails open). What the health check says
// then is the user's choice: with health.require_capture (the default),
// an HTTP check answers 503 while captures are being dropped (some were in
// the last second), so a GWLB sends new flows to appliances that capture
// (existing flows stay, and when every target is unhealthy GWLB sends to
// all: traffic is never lost to it). A TCP check cannot say "degraded":
// the connection is accepted while fwd runs its loop. When fwd stops,
// nothing answers and every check fails.

import (
	"bytes"
	"hash/maphash"
	"slices"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/shmring"
)

// gwlbMinMTU is the MTU a GWLB appliance's port needs: GWLB's 8500 and the
// 68 bytes it wraps them in.
const gwlbMinMTU = 8500 + gwlbOverhead

// Role is what a port does.
type Role uint8

const (
	RoleRules  Role = iota // the 1-1 rules (default)
	RoleGWLB               // GWLB appliance: GENEVE in, the same packet back
	RoleMirror             // Traffic Mirroring target: VXLAN in, nothing back
)

func (r Role) String() string { return [...]string{"rules", "gwlb", "mirror"}[r] }

// Appliance is a port's appliance role, as configured.
type Appliance struct {
	Role    Role
	Rule    uint32   // rule id of the captured inner packets
	Capture bool     // capture the inner packets (capture: ingress) or not (none)
	Snap    uint32   // bytes kept of each
	VNIs    []uint32 // mirror: the sessions accepted; empty: all
	Health  HealthCheck
}

// HealthCheck is how a GWLB port answers its target group's health check.
type HealthCheck struct {
	Port           uint16 // TCP port (GWLB's default: 80)
	HTTP           bool   // answer HTTP requests (else only the TCP handshake)
	Path           string // HTTP: the path that answers 200 (others: 404)
	RequireCapture bool   // HTTP: 503 while captures are being dropped
}

// Counters of the appliance roles, in Stats.Drops by name (tunnel.go's
// reasons name the refused frames).
const (
	aReturned   = iota // GWLB frames returned (also counted as forwarded)
	aMirrored          // mirror frames captured
	aNotForUs          // frames to an appliance port that are neither tunnel, health check, ARP nor echo
	aHealth            // health-check segments answered
	aHealthBusy        // health checks answered 503 (captures being dropped)
	aVNI               // mirror frames of a session not configured
	aMax
)

var applianceNames = [aMax]string{
	aReturned: "gwlb_returned", aMirrored: "mirror_captured", aNotForUs: "not_appliance_traffic",
	aHealth: "health_check_answered", aHealthBusy: "health_check_503", aVNI: "mirror_vni_not_configured",
}

// appliance handles a frame received on a port with an appliance role. It
// returns the port to send f on (in, for a GWLB return), or -1.
func (d *Datapath) appliance(in int, f []byte, m vnet) int {
	a := d.cur.appl[in] // the settings in force (editable: control.go); the role is not
	var p ippkt
	switch etherType(f) {
	case etherARP:
		return d.arp(in, f)
	case etherIPv4:
		if r := parseIPv4(f, &p); r != rOK {
			return d.drop(r)
		}
	case etherIPv6:
		if a.Role != RoleMirror || !d.isUDPTo(f, vxlanUDPPort) {
			return d.handle6(in, f, m) // NDP and echo; no rule matches an appliance port
		}
		if r := parseIPv6(f, &p); r != rOK {
			return d.drop(r)
		}
	case 0:
		return d.drop(rShort)
	default:
		return d.drop(rNotIPv4)
	}
	if rs := d.ourMAC(in, f); rs != rOK {
		return d.drop(rs)
	}
	if m.gsoType != 0 {
		// A UDP super-frame of tunnel datagrams (UDP GRO forwarding on the
		// port): not cut into its datagrams here.
		return d.drop(rBadGSO)
	}
	if rs := finishPartial(f, &p, &m); rs != rOK {
		return d.drop(rs)
	}
	if p.v6 {
		if !d.cur.isLocal6(uint8(in), f[p.ip+24:p.ip+40]) {
			return d.drop(rNotLocal)
		}
	} else if !d.cur.isLocal(uint8(in), be.Uint32(f[p.ip+16:])) {
		return d.drop(rNotLocal)
	}
	l4ok := p.l4 != 0 && !p.frag && p.l4+8 <= p.end
	switch {
	case !l4ok:
	case a.Role == RoleGWLB && p.proto == protoUDP && be.Uint16(f[p.l4+2:]) == geneveUDPPort:
		return d.gwlb(in, f, &p, a)
	case a.Role == RoleMirror && p.proto == protoUDP && be.Uint16(f[p.l4+2:]) == vxlanUDPPort:
		return d.mirror(in, f, a)
	case a.Role == RoleGWLB && p.proto == protoTCP && be.Uint16(f[p.l4+2:]) == a.Health.Port && !p.v6:
		d.healthCheck(in, f, &p, a)
		return -1
	case p.proto == protoICMP && !p.v6 && f[p.l4] == icmpEchoRequest:
		echoReply(f, &p, d.ports[in].mac)
		d.answered(rEchoLocal)
		return d.sent(in, f)
	}
	d.c.appliance[aNotForUs]++
	return -1
}

// isUDPTo says whether f is an IPv6 UDP datagram to port (no extension
// headers: a tunnel sender adds none).
func (d *Datapath) isUDPTo(f []byte, port uint16) bool {
	return len(f) >= etherHdrLen+40+8 && f[etherHdrLen+6] == protoUDP && be.Uint16(f[etherHdrLen+40+2:]) == port
}

// gwlb captures the inner packet of a GENEVE frame and returns the frame.
func (d *Datapath) gwlb(in int, f []byte, p *ippkt, a *Appliance) int {
	var g geneveInfo
	if res := parseGeneveIP(f, p, &g); res != tunOK {
		d.c.tunnel[res]++
		return -1
	}
	if a.Capture && d.ring != nil {
		h := g.inner - etherHdrLen // inside the GENEVE header and options: always ≥ 0
		var save [etherHdrLen]byte
		copy(save[:], f[h:g.inner])
		clear(f[h : h+12])
		et := uint16(etherIPv4)
		if g.inner6 {
			et = etherIPv6
		}
		be.PutUint16(f[h+12:], et)
		o := origin.FromGWLB(g.endpointID, g.attachmentID, g.flowCookie) // on the stack: capture1 does not keep it
		d.capture1(f[h:g.end], etherHdrLen+g.innerLen(), in, shmring.DirIngress, &d.cur.capRule[in], &o)
		copy(f[h:g.inner], save[:])
	}
	geneveReturn(f, &g)
	d.c.appliance[aReturned]++
	d.answered(rOK)
	return d.sent(in, f)
}

// mirror captures the inner frame of a VXLAN frame.
func (d *Datapath) mirror(in int, f []byte, a *Appliance) int {
	var v vxlanInfo
	if res := parseVXLAN(f, &v); res != tunOK {
		d.c.tunnel[res]++
		return -1
	}
	if len(a.VNIs) != 0 {
		if !slices.Contains(a.VNIs, v.vni) {
			d.c.appliance[aVNI]++
			return -1
		}
	}
	d.c.appliance[aMirrored]++
	if a.Capture && d.ring != nil {
		var o origin.Origin
		if v.v6 {
			o = origin.FromMirror(v.vni, f[v.ip+8:v.ip+24]) // outer source address
		} else {
			o = origin.FromMirror(v.vni, f[v.ip+12:v.ip+16])
		}
		d.capture1(f[v.inner:v.end], v.origLen, in, shmring.DirIngress, &d.cur.capRule[in], &o)
	}
	return -1
}

// The health check. GWLB opens a TCP connection to the target's health
// port from several of its nodes every interval; a TCP check is healthy
// when the handshake completes, an HTTP check when the answer to
// "GET path" is 200-399. fwd answers it itself, in the datapath, without
// connection state: every answer is computed from the segment it answers.
//
//	SYN               → SYN|ACK, seq = a keyed hash of the connection and the
//	                    peer's ISN, ack = their seq + 1
//	data (HTTP)       → if the data ends a request ("\r\n\r\n"): the
//	                    response, with FIN, seq = their ack; else an ACK
//	data (TCP check)  → ACK
//	FIN               → ACK (with FIN, when the check is TCP: fwd closes too)
//	RST, a bare ACK   → nothing
//
// A lost answer is answered again when the peer retransmits. The request
// must come in one segment, as GWLB's (a few dozen bytes) do: with no
// state, a segment that ends a request begun in another has no request
// line, and is answered 400; its first part is acknowledged. No TCP options are sent: the peer then
// sends at most 536 bytes per segment, more than a health check needs.
const (
	tcpSYN = 0x02 // tcpFIN and tcpPSH: gso.go
	tcpRST = 0x04
	tcpACK = 0x10
)

var healthSeed = maphash.MakeSeed()

func (d *Datapath) healthCheck(in int, f []byte, p *ippkt, a *Appliance) {
	t := p.l4
	hl := int(f[t+12]>>4) * 4
	if hl < 20 || t+hl > p.end {
		d.c.reasons[rBadL4]++
		return
	}
	fl := f[t+13]
	seq, ack := be.Uint32(f[t+4:]), be.Uint32(f[t+8:])
	data := f[t+hl : p.end]
	healthy := d.healthy(a)
	var outFl byte
	var outSeq, outAck uint32
	var body []byte
	switch {
	case fl&tcpRST != 0:
		return
	case fl&tcpSYN != 0 && fl&tcpACK == 0:
		outSeq, outAck = d.isn(f, p, seq), seq+1
		outFl = tcpSYN | tcpACK
	case fl&tcpACK == 0:
		return
	case len(data) > 0 && a.Health.HTTP && bytes.HasSuffix(data, []byte("\r\n\r\n")):
		body = d.httpAnswer(data, a, healthy)
		if bytes.HasPrefix(data, []byte("HEAD ")) {
			body = body[:bytes.Index(body, []byte("\r\n\r\n"))+4] // the headers alone
		}
		outSeq, outAck = ack, seq+uint32(len(data))
		outFl = tcpACK | tcpPSH | tcpFIN
		if fl&tcpFIN != 0 {
			outAck++
		}
	case fl&tcpFIN != 0:
		outSeq, outAck = ack, seq+uint32(len(data))+1
		outFl = tcpACK
		if !a.Health.HTTP {
			outFl |= tcpFIN
		}
	case len(data) > 0:
		outSeq, outAck = ack, seq+uint32(len(data))
		outFl = tcpACK
	default:
		return // a bare ACK
	}
	d.sendTCP(in, f, p, outSeq, outAck, outFl, body)
	d.c.appliance[aHealth]++
	if len(body) > 0 && &body[0] == &httpBusy[0] {
		d.c.appliance[aHealthBusy]++
	}
}

// healthy says whether an HTTP check is answered 200: false while captures
// are being dropped, when require_capture asks it (see the package
// comment). A TCP check has no way to say so: its handshake is always
// accepted while fwd runs.
func (d *Datapath) healthy(a *Appliance) bool {
	return !(a.Health.HTTP && a.Health.RequireCapture && a.Capture && d.captureFailing)
}

// isn is the initial sequence number fwd answers a SYN with: a keyed hash
// of the connection and the peer's ISN (unpredictable to others, the same
// for a retransmitted SYN).
func (d *Datapath) isn(f []byte, p *ippkt, peerISN uint32) uint32 {
	var b [16]byte
	copy(b[0:8], f[p.ip+12:p.ip+20])
	copy(b[8:12], f[p.l4:p.l4+4])
	be.PutUint32(b[12:], peerISN)
	return uint32(maphash.Bytes(healthSeed, b[:]))
}

// The HTTP answers, made once: a health check should not allocate.
var (
	httpOK       = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhealthy\n")
	httpBusy     = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 33\r\nConnection: close\r\n\r\nforwarding; captures are dropped\n")
	httpNotFound = []byte("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n")
	httpBad      = []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n")
)

// httpAnswer is the answer to the request that ends data: its request line
// is "GET path HTTP/1.x" (or HEAD).
func (d *Datapath) httpAnswer(data []byte, a *Appliance, healthy bool) []byte {
	line, _, _ := bytes.Cut(data, []byte("\r\n"))
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	path, _, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || !(string(method) == "GET" || string(method) == "HEAD") {
		return httpBad
	}
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	switch {
	case string(path) != a.Health.Path:
		return httpNotFound
	case !healthy:
		return httpBusy
	}
	return httpOK
}

// sendTCP sends a TCP segment back to the sender of f (IPv4), from the
// address and port it was sent to, carrying body.
func (d *Datapath) sendTCP(in int, f []byte, p *ippkt, seq, ack uint32, fl byte, body []byte) {
	b := d.healthBuf[:etherHdrLen+20+20+len(body)]
	copy(b[0:6], f[6:12])
	copy(b[6:12], d.ports[in].mac[:])
	be.PutUint16(b[12:], etherIPv4)
	ip := b[etherHdrLen:]
	ip[0], ip[1] = 0x45, 0
	be.PutUint16(ip[2:], uint16(20+20+len(body)))
	be.PutUint32(ip[4:], 0x4000) // id 0, DF
	ip[8], ip[9] = 64, protoTCP
	be.PutUint16(ip[10:], 0)
	copy(ip[12:16], f[p.ip+16:p.ip+20])
	copy(ip[16:20], f[p.ip+12:p.ip+16])
	be.PutUint16(ip[10:], csum(ip[:20], 0))
	t := ip[20:]
	be.PutUint16(t[0:], be.Uint16(f[p.l4+2:]))
	be.PutUint16(t[2:], be.Uint16(f[p.l4:]))
	be.PutUint32(t[4:], seq)
	be.PutUint32(t[8:], ack)
	t[12], t[13] = 5<<4, fl
	if fl&tcpRST != 0 {
		be.PutUint16(t[14:], 0)
	} else {
		be.PutUint16(t[14:], 65535)
	}
	be.PutUint32(t[16:], 0) // checksum, urgent pointer
	copy(t[20:], body)
	q := ippkt{ip: etherHdrLen, proto: protoTCP}
	be.PutUint16(t[16:], csum(t[:20+len(body)], pseudo(b, &q, 20+len(body))))
	d.tx.send(in, b)
}
