package fwd

// The AF_PACKET backend (pure Go, the default build). Per port, two sockets
// share nothing but the interface:
//
//   - receive: recvmmsg, up to rxBatch frames a call, each into a buffer
//     of its own that holds a whole super-frame, with its receive time
//     (SO_TIMESTAMPNS) and the kernel's packet status (PACKET_AUXDATA:
//     VLAN tag, lengths). Frames are rewritten in those buffers and copied
//     once, into the transmit ring. A TPACKET_V3 receive ring would save
//     that copy but hands a block over only when it is full or its timer
//     fires, and the timer runs in jiffies: 4 ms at HZ=250. Every frame of
//     a quiet direction (TCP's ACKs) then waited up to 4 ms, the round
//     trip through fwd grew to 3-8 ms, and TCP through fwd ran at a third
//     of the kernel's speed (bench/RESULTS.md). recvmmsg hands frames over
//     as they come. The socket's receive buffer (SO_RCVBUFFORCE, rxBuffer)
//     holds what arrives while fwd is busy; what overflows it is counted
//     (PACKET_STATISTICS). Our own transmissions are not looped back
//     (PACKET_IGNORE_OUTGOING).
//   - transmit: sendmmsg from where the frames are. A frame is rewritten
//     in its receive buffer and queued to its port's batch, which holds a
//     pointer to it, not a copy; every receive batch ends with one
//     sendmmsg per port that has frames. The kernel copies each frame once,
//     into a socket buffer of its own. (A TPACKET_V2 transmit ring took a
//     copy into the ring, and a veth into another namespace copied the
//     ring's pages again, skb_copy_ubufs: three copies of every byte
//     through fwd where this makes two; bench/RESULTS.md.) The socket is
//     bound with protocol 0, so it receives nothing, and bypasses the
//     qdisc (PACKET_QDISC_BYPASS), as the ring did.
//
// Both sockets use PACKET_VNET_HDR (gso.go): a virtio_net_hdr precedes
// every frame, so super-frames (TSO/GSO from the sender, GRO on our ports)
// and partial checksums come in as they are, are rewritten once, and go
// out with the metadata that has the kernel segment and checksum them.
// Ports are used with the kernel's default offloads; nothing is changed
// with ethtool. Where the kernel refuses PACKET_VNET_HDR on a socket, fwd
// does without: partial checksums are finished from TP_STATUS_CSUMNOTREADY
// and super-frames are cut into segments here (gsoPlan.build) on transmit.
//
// The transmit path never stalls silently. fwd checks each frame first
// (length against the MTU, metadata against the headers: txCheck) and
// counts what it does not send. sendmmsg stops at a frame the kernel
// refuses and says why: that frame is counted by reason (tx_rejected; a
// device that dropped it, ENOBUFS: tx_ring_full; a full send buffer:
// tx_ring_full for the rest of the batch too) and the frames after it go
// in the next call. TX counters
// count the frames the kernel took. A port whose socket refuses every
// frame for txStallAfter is reported (log, metric, fmctl stats) until it
// takes one again; a socket whose send buffer stays full is opened anew.
// Nothing waits: the loop never blocks on transmit.
//
// When no port has a frame the loop sleeps in poll(2) on the receive
// sockets (at most pollTimeout, for housekeeping); with fwd.spin it first
// keeps asking for that long after the last frame. Spinning saves the
// wake-ups (TCP through fwd: 0.61 of the kernel's rate without, 0.69-0.75
// with 50us in bench/fwd-ns.sh) but takes a core's time from whatever
// shares it: on the 2-core bench machine, where both iperf3 ends share
// fwd's cores, small-packet UDP fell from 0.63-0.69 to 0.51-0.53 of the
// kernel's. Default: sleep at once (spin 0).
//
// The layouts used (linux/if_packet.h, linux/socket.h):
//
//	received buffer: the 10-byte virtio_net_hdr (with PACKET_VNET_HDR), then
//	  the frame; recvmmsg's length with MSG_TRUNC is the whole frame's
//	control messages: cmsghdr (len u64 @0, level i32 @8, type i32 @12, data
//	  @16, next at len rounded up to 8); SCM_TIMESTAMPNS: tv_sec i64, tv_nsec
//	  i64; PACKET_AUXDATA: tp_status u32 @0, tp_len u32 @4, tp_snaplen u32 @8,
//	  tp_mac u16 @12, tp_net u16 @14, tp_vlan_tci u16 @16, tp_vlan_tpid u16 @18
//	sent message: iovec 0 the 10-byte virtio_net_hdr (with PACKET_VNET_HDR),
//	  iovec 1 the frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const (
	rxBatch   = 64                      // frames a recvmmsg call takes
	rxBufSize = vnetLen + maxSuper + 64 // a super-frame and its header, rounded
	rxCtlSize = 128                     // room for the timestamp and auxdata messages
	rxBuffer  = 32 << 20                // the socket's receive buffer
	txBatch   = 2 * rxBatch             // frames a port's transmit batch holds
	txSegArea = 256 << 10               // segments cut in software wait here
	txSndBuf  = 32 << 20                // the transmit socket's send buffer
	// fwd.spin: after a frame, the loop may keep asking for more before it
	// sleeps in poll, since waking a sleeping thread costs more than the
	// frames of a busy flow are apart; at most maxSpin.
	maxSpin         = 10 * time.Millisecond
	pollTimeout     = 10 // ms
	txStallAfter    = int64(2 * time.Second)
	txStallLogEvery = int64(10 * time.Second)
)

var le = binary.LittleEndian

type afPort struct {
	name    string
	ifindex int
	mac     [6]byte
	mtu     int
	rxFD    int
	rxVnet  bool // the receive socket has PACKET_VNET_HDR
	// recvmmsg's messages, their buffers and control buffers, made once.
	rxMsgs []mmsghdr
	rxIov  []unix.Iovec
	rxBuf  []byte
	rxCtl  []byte
	txFD   int
	txVnet bool // the transmit socket has PACKET_VNET_HDR
	// The transmit batch: frames waiting for sendmmsg, each where it was
	// received and rewritten (a receive buffer) or, cut here from a
	// super-frame, in txSeg; every receive batch ends by sending them
	// (flush). txIov holds two entries a message: the virtio_net_hdr (in
	// txHdr) and the frame.
	txMsgs    []mmsghdr
	txIov     []unix.Iovec
	txHdr     []byte
	txLen     []int    // each message's frame length
	txWas     []reason // what the datapath counted each frame as (refusedAs)
	txN       int
	txSeg     []byte
	txSegUsed int
	// Stall watch: the first and the last refusal since the kernel last
	// took a frame (0: it took the last one), the last refusal's error.
	txFailSince, txFailLast int64
	txErr                   unix.Errno
	txLogged                int64
	txReopenLogged          int64
	txStalled               bool
	drops                   uint64 // kernel receive drops so far (PACKET_STATISTICS resets on read)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openAFPacket opens the two sockets of one interface.
func openAFPacket(dev string) (*afPort, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", dev, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("interface %q is down: ip link set %s up", dev, dev)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %q has no Ethernet address", dev)
	}
	p := &afPort{name: dev, ifindex: ifi.Index, mtu: ifi.MTU, rxFD: -1, txFD: -1}
	copy(p.mac[:], ifi.HardwareAddr)
	fail := func(what string, err error) (*afPort, error) {
		p.close()
		if err == unix.EPERM {
			return nil, fmt.Errorf("interface %q: %s: %w (fwd needs CAP_NET_RAW and CAP_NET_ADMIN)", dev, what, err)
		}
		return nil, fmt.Errorf("interface %q: %s: %w", dev, what, err)
	}
	// Receive socket.
	if p.rxFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
		return fail("socket", err)
	}
	p.rxVnet = unix.SetsockoptInt(p.rxFD, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1) == nil
	if err = unix.SetsockoptInt(p.rxFD, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("PACKET_AUXDATA", err)
	}
	if err = unix.SetsockoptInt(p.rxFD, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("SO_TIMESTAMPNS", err)
	}
	if err = unix.SetsockoptInt(p.rxFD, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rxBuffer); err != nil {
		_ = unix.SetsockoptInt(p.rxFD, unix.SOL_SOCKET, unix.SO_RCVBUF, rxBuffer) // without CAP_NET_ADMIN: what rmem_max allows
	}
	_ = unix.SetsockoptInt(p.rxFD, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	p.rxMsgs = make([]mmsghdr, rxBatch)
	p.rxIov = make([]unix.Iovec, rxBatch)
	p.rxBuf = make([]byte, rxBatch*rxBufSize)
	p.rxCtl = make([]byte, rxBatch*rxCtlSize)
	for i := range p.rxMsgs {
		p.rxIov[i].Base = &p.rxBuf[i*rxBufSize]
		p.rxIov[i].SetLen(rxBufSize)
		m := &p.rxMsgs[i]
		m.hdr.Iov = &p.rxIov[i]
		m.hdr.Iovlen = 1
		m.hdr.Control = &p.rxCtl[i*rxCtlSize]
		m.hdr.SetControllen(rxCtlSize)
	}
	if err = unix.Bind(p.rxFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.ifindex}); err != nil {
		return fail("bind", err)
	}
	if err = p.openTX(); err != nil {
		return fail("transmit", err)
	}
	return p, nil
}

// openTX opens the transmit socket and makes its batch.
func (p *afPort) openTX() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	p.txFD = fd
	p.txVnet = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1) == nil
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	// A sent frame is charged to the send buffer until the device (or,
	// through a veth, the receiving stack) lets it go; the default (about
	// 200 KiB: three super-frames) would refuse most of a burst.
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, txSndBuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, txSndBuf) // without CAP_NET_ADMIN: what wmem_max allows
	}
	if err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: p.ifindex}); err != nil {
		return fmt.Errorf("bind tx: %w", err)
	}
	p.txMsgs = make([]mmsghdr, txBatch)
	p.txIov = make([]unix.Iovec, 2*txBatch)
	p.txHdr = make([]byte, vnetLen*txBatch)
	p.txLen = make([]int, txBatch)
	p.txWas = make([]reason, txBatch)
	p.txSeg = make([]byte, txSegArea)
	for i := range p.txMsgs {
		p.txMsgs[i].hdr.Iov = &p.txIov[2*i]
		if p.txVnet {
			p.txIov[2*i].Base = &p.txHdr[i*vnetLen]
			p.txIov[2*i].SetLen(vnetLen)
		}
	}
	p.txN, p.txSegUsed = 0, 0
	return nil
}

func (p *afPort) close() {
	if p.rxFD >= 0 {
		unix.Close(p.rxFD)
	}
	if p.txFD >= 0 {
		unix.Close(p.txFD)
	}
}

// txCheck is the kernel's own check of a frame to send (packet_snd,
// virtio_net_hdr_to_skb), made before the frame goes in, so that what the
// kernel would refuse is refused here with a reason (tx_rejected): a frame
// shorter than an Ethernet header or longer than a super-frame, longer
// than the MTU without segmentation metadata, or with metadata that does
// not fit the frame.
func (p *afPort) txCheck(f []byte, m *vnet) reason {
	switch {
	case len(f) < etherHdrLen || len(f) > maxSuper+etherHdrLen:
		return rTxRejected
	case m.gsoType == gsoNone && p.mtu > 0 && len(f)-etherHdrLen > p.mtu:
		return rTxRejected
	case m.flags&vnetNeedsCsum != 0 && int(m.csumStart)+int(m.csumOffset)+2 > len(f):
		return rTxRejected
	case m.gsoType != gsoNone && (m.gsoSize == 0 || int(m.hdrLen) > len(f) || m.flags&vnetNeedsCsum == 0):
		return rTxRejected
	}
	return rOK
}

// queue adds a frame, with its metadata, to the batch (which has room).
// The frame is not copied: it must stay as it is until the next flush.
// was is what the datapath counted the frame as (wasNothing: nothing).
func (p *afPort) queue(f []byte, m *vnet, was reason) {
	i := p.txN
	iov := p.txIov[2*i : 2*i+2]
	msg := &p.txMsgs[i].hdr
	if p.txVnet {
		m.encode(p.txHdr[i*vnetLen:])
		iov[1].Base = &f[0]
		iov[1].SetLen(len(f))
		msg.Iovlen = 2
	} else {
		iov[0].Base = &f[0]
		iov[0].SetLen(len(f))
		msg.Iovlen = 1
	}
	p.txLen[i] = len(f)
	p.txWas[i] = was
	p.txN++
}

// failed notes a refusal by the socket or the device (not of one bad
// frame) at now, a monotonic time (for watchTX). A refusal long after the
// last one starts a new episode.
func (p *afPort) failed(e unix.Errno, now int64) {
	now = max(now, 1) // 0 is "not failing"
	if p.txFailSince == 0 || now-p.txFailLast >= txStallAfter {
		p.txFailSince = now
	}
	p.txErr, p.txFailLast = e, now
}

// wasNothing marks a queued frame the datapath did not count as sent
// (the second and later segments of a frame cut here).
const wasNothing = rMax

// put queues a frame for port j with the offload metadata m, or refuses it
// (txCheck). A super-frame on a socket without PACKET_VNET_HDR is cut into
// segments (g) here, each built in the port's segment area.
func (b *afBackend) put(j int, f []byte, m *vnet, g *gsoPlan) reason {
	p := b.ports[j]
	if rs := p.txCheck(f, m); rs != rOK {
		return rs
	}
	if m.gsoType != gsoNone && !p.txVnet {
		was := b.d.last
		for k := 0; k < g.n; k++ {
			if need := g.hl + g.mss; p.txN == txBatch || p.txSegUsed+need > len(p.txSeg) {
				b.flush(j)
			}
			dst := p.txSeg[p.txSegUsed:]
			n := g.build(f, k, dst)
			p.queue(dst[:n], &vnet{}, was)
			p.txSegUsed += n
			was = wasNothing
		}
		return rOK
	}
	if p.txN == txBatch {
		b.flush(j)
	}
	p.queue(f, m, b.d.last)
	return rOK
}

// flush sends port j's batch: sendmmsg hands the kernel as many frames as
// it takes; a frame it refuses is counted by reason (the error said why)
// and the frames after it are sent in the next call, so that one bad frame
// never holds the others. What the kernel took is counted as transmitted.
func (b *afBackend) flush(j int) {
	p := b.ports[j]
	var pkts, bytes uint64
	nobufs := 0
	rest := func(k int, rs reason) { // counts the batch from k as refused
		for ; k < p.txN; k++ {
			b.d.refusedAs(rs, p.txWas[k])
		}
	}
	if p.txFD < 0 { // reopening failed (watchTX tries again)
		p.failed(unix.EBADF, b.mono)
		rest(0, rTxRejected)
		p.txN, p.txSegUsed = 0, 0
		return
	}
	for k := 0; k < p.txN; {
		n, e := sendmmsg(p.txFD, p.txMsgs[k:p.txN], unix.MSG_DONTWAIT)
		if e == unix.EINTR {
			continue
		}
		if e != 0 || n <= 0 {
			switch e {
			case unix.EAGAIN, unix.ENETDOWN, unix.ENXIO, unix.ENODEV:
				// The send buffer is full, or the device is down: so it
				// is for the rest of the batch too, which is counted the
				// same way rather than tried one system call each.
				p.failed(e, b.mono)
				rs := rTxRejected
				if e == unix.EAGAIN {
					rs = rTxFull
				}
				rest(k, rs)
				k = p.txN
			case unix.ENOBUFS:
				// The device dropped this one: its queue was full, or it
				// could not take the frame. The next may go; twice in a
				// batch, the queue is full and the rest is counted.
				p.failed(e, b.mono)
				if nobufs++; nobufs == 2 {
					rest(k, rTxFull)
					k = p.txN
				} else {
					b.d.refusedAs(rTxFull, p.txWas[k])
					k++
				}
			default:
				// This frame was refused (EINVAL, EMSGSIZE): a bad frame,
				// not the port's state; the next goes.
				b.d.refusedAs(rTxRejected, p.txWas[k])
				k++
			}
			continue
		}
		for _, l := range p.txLen[k : k+n] {
			pkts++
			bytes += uint64(l)
		}
		k += n
		p.txFailSince = 0
	}
	p.txN, p.txSegUsed = 0, 0
	if pkts > 0 {
		b.d.TxTaken(j, pkts, bytes)
	}
}

// afBackend drives all ports from one goroutine.
type afBackend struct {
	ports []*afPort
	d     *Datapath
	pfds  []unix.PollFd
	stop  atomic.Bool
	ready func() // called once the loop runs (service readiness)
	log   *slog.Logger
	mono  int64 // the loop's monotonic clock (ns since it started)
	spin  int64 // fwd.spin, ns
	// fp: the kernel fast path (fwd.fastpath, fastpath.go), nil when off;
	// fpNext: when its counters are next collected (monotonic).
	fp      *fastpath
	fpNext  int64
	fpErrAt int64
	fpTable *table // the table the fast path's map was last made from
	next    int64  // next transmit check (mono)
}

func newAFBackend(ports []Port, log *slog.Logger) (*afBackend, error) {
	b := &afBackend{log: log}
	for _, p := range ports {
		ap, err := openAFPacket(p.Device)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("port %s: %w", p.Name, err)
		}
		b.ports = append(b.ports, ap)
		if !ap.rxVnet || !ap.txVnet {
			log.Warn("the kernel refused PACKET_VNET_HDR: super-frames are segmented in software", "port", p.Name)
		}
	}
	return b, nil
}

func (b *afBackend) macs() [][6]byte {
	m := make([][6]byte, len(b.ports))
	for i, p := range b.ports {
		m[i] = p.mac
	}
	return m
}

func (b *afBackend) mtus() []int {
	m := make([]int, len(b.ports))
	for i, p := range b.ports {
		m[i] = p.mtu
	}
	return m
}

func (b *afBackend) setDatapath(d *Datapath, ready func()) {
	b.d, b.ready = d, ready
	d.nic = b.nicDrops
	d.fpActive.Store(b.fp != nil)
}
func (b *afBackend) halt() { b.stop.Store(true) }

// send transmits a frame built outside a burst (ARP, NDP, released
// packets, ICMP errors): a plain frame with complete checksums, sent now,
// since the caller's buffer is reused after the call.
func (b *afBackend) send(port int, f []byte) bool {
	p := b.ports[port]
	if p.txCheck(f, &vnet{}) != rOK {
		return false
	}
	if p.txN == txBatch {
		b.flush(port)
	}
	p.queue(f, &vnet{}, wasNothing) // the batch's last message, taken back below
	i := p.txN - 1
	n, e := sendmmsg(p.txFD, p.txMsgs[i:i+1], unix.MSG_DONTWAIT)
	if e == unix.EINTR {
		n, e = sendmmsg(p.txFD, p.txMsgs[i:i+1], unix.MSG_DONTWAIT)
	}
	p.txN--
	if e != 0 || n != 1 {
		if e != unix.EINVAL && e != unix.EMSGSIZE {
			p.failed(e, b.mono)
		}
		return false
	}
	p.txFailSince = 0
	b.d.TxTaken(port, 1, uint64(len(f)))
	return true
}

// mmsghdr is struct mmsghdr (linux/socket.h), which x/sys/unix lacks.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// rxBatch receives what port i has (up to rxBatch frames, without
// waiting) and handles each frame. It returns how many it took.
func (b *afBackend) rxBatch(i int) int {
	p := b.ports[i]
	// MSG_TRUNC: a frame longer than its buffer reports its real length.
	n, e := recvmmsg(p.rxFD, p.rxMsgs, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
	if e != 0 || n <= 0 {
		return 0
	}
	d := b.d
	for k := 0; k < n; k++ {
		m := &p.rxMsgs[k]
		buf := p.rxBuf[k*rxBufSize : (k+1)*rxBufSize]
		got := int(m.len) // the whole frame's length (MSG_TRUNC), header included
		snap := min(got, rxBufSize)
		var aux auxdata
		ctlLen := int(m.hdr.Controllen)
		m.hdr.SetControllen(rxCtlSize) // the kernel wrote what it used; the next call may use it all
		if !parseControl(p.rxCtl[k*rxCtlSize:k*rxCtlSize+min(ctlLen, rxCtlSize)], &aux) {
			aux.ts = time.Now().UnixNano() // no timestamp message: the kernel always sends one when asked
		}
		d.now = aux.ts
		var v vnet
		off := 0
		if p.rxVnet {
			if snap < vnetLen {
				continue
			}
			v.decode(buf)
			off = vnetLen
		} else if aux.status&unix.TP_STATUS_CSUMNOTREADY != 0 {
			v.flags = vnetNeedsCsum
		}
		f := buf[off:snap]
		wire := got - off
		if aux.status&unix.TP_STATUS_VLAN_VALID != 0 {
			d.c.ports[i].rxPkts++
			d.drop(rVLAN)
			continue
		}
		if out := d.HandleMeta(i, f, wire, v); out >= 0 {
			if rs := b.put(out, f, &d.outMeta, &d.plan); rs != rOK {
				d.TxRefused(rs)
			}
		}
	}
	// The batches point into this port's receive buffers, which the next
	// recvmmsg overwrites: they go now.
	for j, q := range b.ports {
		if q.txN > 0 {
			b.flush(j)
		}
	}
	return n
}

// auxdata is what fwd takes from a received frame's control messages.
type auxdata struct {
	ts     int64  // receive time, Unix ns (SCM_TIMESTAMPNS)
	status uint32 // tp_status (PACKET_AUXDATA)
}

// parseControl reads the control messages of one received frame: the
// timestamp and the packet status. Every length is checked against the
// buffer. False when no timestamp was found.
func parseControl(c []byte, a *auxdata) bool {
	const hdr = 16 // struct cmsghdr: len u64, level i32, type i32
	found := false
	for len(c) >= hdr {
		l := int(le.Uint64(c))
		if l < hdr || l > len(c) {
			return found
		}
		level, typ := int32(le.Uint32(c[8:])), int32(le.Uint32(c[12:]))
		data := c[hdr:l]
		switch {
		case level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && len(data) >= 16:
			a.ts = int64(le.Uint64(data))*1e9 + int64(le.Uint64(data[8:]))
			found = true
		case level == unix.SOL_PACKET && typ == unix.PACKET_AUXDATA && len(data) >= 4:
			a.status = le.Uint32(data)
		}
		next := (l + 7) &^ 7
		if next >= len(c) {
			break
		}
		c = c[next:]
	}
	return found
}

// run is the poll loop. It returns when stop is set.
func (b *afBackend) run() {
	for _, p := range b.ports {
		b.pfds = append(b.pfds, unix.PollFd{Fd: int32(p.rxFD), Events: unix.POLLIN})
	}
	first := true
	base := time.Now()
	var lastGot int64
	for !b.stop.Load() {
		// The datapath stamps and expires with the wall clock; the spin
		// and the stall watch measure with the monotonic one, which no
		// clock step moves.
		now := time.Now()
		b.mono = int64(now.Sub(base))
		b.d.Begin(now.UnixNano())
		if b.fp != nil && b.d.cur != b.fpTable {
			b.syncFastpath(true) // a new table: in the kernel before the edit returns
		}
		got := 0
		for i := range b.ports {
			got += b.rxBatch(i)
		}
		if b.mono >= b.next {
			b.next = b.mono + int64(100*time.Millisecond)
			b.watchTX(b.mono)
			b.syncFastpath(false)
		}
		b.d.End()
		if first && b.ready != nil {
			b.ready()
			first = false
		}
		if got > 0 {
			lastGot = int64(time.Since(base)) // the spin counts from the end of the work
		} else if b.mono-lastGot >= b.spin {
			unix.Poll(b.pfds, pollTimeout)
		}
	}
}

// watchTX reports a port whose transmit socket or device has refused
// every frame for txStallAfter (log, metric, fmctl stats): the frames were
// counted as they were refused. A socket whose send buffer stays full
// (EAGAIN: its frames held somewhere below) is opened anew, since nothing
// else would free it. now is monotonic.
func (b *afBackend) watchTX(now int64) {
	for i, p := range b.ports {
		pc := &b.d.c.ports[i]
		if p.txFD < 0 {
			b.reopenTX(i, now)
		}
		// Stalled: refusing for txStallAfter, and still asked to send.
		failing := p.txFailSince != 0 && now-p.txFailLast < txStallAfter
		if !failing || now-p.txFailSince < txStallAfter {
			if p.txStalled && !failing {
				p.txStalled, pc.txStalled = false, false
				if p.txFailSince == 0 {
					b.log.Info("transmit resumed", "port", p.name)
				} else {
					b.log.Info("transmit: no frame refused for 2 s", "port", p.name)
				}
			}
			continue
		}
		if !p.txStalled {
			p.txStalled, pc.txStalled = true, true
			pc.txStalls++
		}
		if now-p.txLogged >= txStallLogEvery || p.txLogged == 0 {
			p.txLogged = now
			b.log.Warn("transmit stalled: the kernel has taken no frame for 2 s; each is counted as it is refused",
				"port", p.name, "err", p.txErr.Error(), "stalls", pc.txStalls)
		}
		if p.txErr == unix.EAGAIN {
			b.reopenTX(i, now)
		}
	}
}

// reopenTX opens port i's transmit socket anew (watchTX). On failure the
// port is left without one: flush counts its frames as refused, and the
// next watch tries again.
func (b *afBackend) reopenTX(i int, now int64) {
	p := b.ports[i]
	if p.txFD >= 0 {
		unix.Close(p.txFD)
		p.txFD = -1
	}
	if err := p.openTX(); err != nil {
		if p.txFD >= 0 {
			unix.Close(p.txFD)
			p.txFD = -1
		}
		if now-p.txReopenLogged >= txStallLogEvery || p.txReopenLogged == 0 {
			p.txReopenLogged = now
			b.log.Error("reopen transmit socket", "port", p.name, "err", err)
		}
	}
}

// nicDrops is how many frames the kernel could not put in port's receive
// ring (it was full).
func (b *afBackend) nicDrops(port int) uint64 {
	p := b.ports[port]
	if st, err := unix.GetsockoptTpacketStats(p.rxFD, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		p.drops += uint64(st.Drops)
	}
	return p.drops
}

func (b *afBackend) close() {
	if b.fp != nil {
		b.fp.close() // the tc programs first: nothing is forwarded past a closed fwd
	}
	for _, p := range b.ports {
		p.close()
	}
}

// syncFastpath keeps the kernel fast path's rules in step with the table
// (at once when it changes: newTable) and the neighbors (every
// housekeeping: a newly resolved neighbor is in the kernel within 100 ms),
// and collects its counters at each housekeeping (once a second when it
// has many rules). An error is logged at most once a minute; the frames
// the map does not hold go through fwd meanwhile.
func (b *afBackend) syncFastpath(newTable bool) {
	if b.fp == nil || b.d.cur == nil {
		return
	}
	err := b.fp.sync(b, b.d)
	b.fpTable = b.d.cur
	if err == nil {
		// An edit returns once this is its table (control.swap): not
		// while the kernel may still forward by the old one.
		b.d.fpSynced.Store(b.d.cur)
	}
	if !newTable && (len(b.fp.slot) <= 256 || b.mono >= b.fpNext) {
		b.fpNext = b.mono + int64(time.Second)
		err = errors.Join(err, b.fp.collect(b.d))
	}
	if err != nil && b.mono >= b.fpErrAt {
		b.fpErrAt = b.mono + int64(time.Minute)
		b.log.Warn("kernel fast path", "err", err)
	}
}
