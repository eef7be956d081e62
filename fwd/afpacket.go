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
//   - transmit: TPACKET_V2 with a TX ring of txFrames slots. A frame is
//     copied into the next free slot and marked; one sendto per port per
//     burst (or when half the ring is marked) makes the kernel send every
//     marked slot, bypassing the qdisc. The socket is bound with protocol
//     0, so it receives nothing.
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
// The transmit path never stalls silently. PACKET_LOSS makes the kernel
// skip a frame it refuses instead of stopping the ring at it (without it
// one bad frame stops the port for good); fwd checks each frame first
// (length against the MTU, metadata against the headers) and counts what
// it does not send. TX counters count the slots the kernel has taken
// (reap), not what was queued. A port whose ring holds frames the kernel
// has not taken for txStallAfter is reported (log, metric, fmctl stats)
// and its transmit socket opened anew, dropping (and counting) what was
// queued, so that one wedged socket cannot hold the port.
//
// A full TX ring drops the frame with a counted reason; the loop never
// waits on transmit. When no port has a frame waiting the loop sleeps in
// poll(2) on the receive sockets (at most pollTimeout, for housekeeping).
//
// The layouts used (linux/if_packet.h, linux/socket.h):
//
//	received buffer: the 10-byte virtio_net_hdr (with PACKET_VNET_HDR), then
//	  the frame; recvmmsg's length with MSG_TRUNC is the whole frame's
//	control messages: cmsghdr (len u64 @0, level i32 @8, type i32 @12, data
//	  @16, next at len rounded up to 8); SCM_TIMESTAMPNS: tv_sec i64, tv_nsec
//	  i64; PACKET_AUXDATA: tp_status u32 @0, tp_len u32 @4, tp_snaplen u32 @8,
//	  tp_mac u16 @12, tp_net u16 @14, tp_vlan_tci u16 @16, tp_vlan_tpid u16 @18
//	tpacket2_hdr (TX): tp_status u32 @0, tp_len u32 @4, tp_snaplen u32 @8,
//	  tp_mac u16 @12, ...; data at offset 32 = TPACKET2_HDRLEN - sizeof(sockaddr_ll),
//	  starting with the virtio_net_hdr when the socket has PACKET_VNET_HDR

import (
	"encoding/binary"
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
	// TX slots hold a whole super-frame and its virtio_net_hdr: 17 pages,
	// 15 to a 1 MiB block (the kernel allocates each block contiguously,
	// so blocks stay small), 18 blocks: 18 MiB a port.
	txFrameSize     = 17 << 12
	txBlockSize     = 1 << 20
	txPerBlock      = txBlockSize / txFrameSize
	txBlocks        = 18
	txFrames        = txPerBlock * txBlocks
	txDataOff       = 32
	pollTimeout     = 10 // ms
	txStallAfter    = int64(2 * time.Second)
	txSkipAfter     = int64(50 * time.Millisecond)
	txSkipped       = ^uint32(0)
	txStallLogEvery = int64(10 * time.Second)

	tpStatusSendRequest = 1
	tpStatusSending     = 2
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
	rxMsgs   []mmsghdr
	rxIov    []unix.Iovec
	rxBuf    []byte
	rxCtl    []byte
	txFD     int
	tx       []byte
	txVnet   bool // the transmit socket has PACKET_VNET_HDR
	txHead   int  // next slot to fill
	txTail   int  // oldest slot the kernel has not taken yet (when txQueued > 0)
	txQueued int  // slots marked and not yet taken
	txDirty  bool
	// Slots reaped in the middle of a burst (mark), for service to report.
	takenPkts, takenBytes uint64
	// txLen is each slot's frame length as fwd wrote it (txSkipped: made
	// for the kernel to skip), so that reap counts from fwd's own memory.
	txLen      [txFrames]uint32
	txErr      unix.Errno // the last sendto's error
	txErrSince int64      // when the kernel started failing at txTail (0: it is not)
	// Stall watch: the time txTail last moved (or the ring was empty).
	txProgress  int64
	txLogged    int64
	txErrLogged int64
	txStalled   bool
	drops       uint64 // kernel receive drops so far (PACKET_STATISTICS resets on read)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openAFPacket opens the two sockets and rings of one interface.
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

// openTX opens the transmit socket and its ring.
func (p *afPort) openTX() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	p.txFD = fd
	if err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fmt.Errorf("TPACKET_V2: %w", err)
	}
	p.txVnet = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1) == nil
	if err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return fmt.Errorf("PACKET_LOSS: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	// The pages of every slot in flight are charged to the send buffer; the
	// default (about 200 KiB: three super-frames) would stall the ring on
	// EAGAIN long before it is full.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, txFrames*txFrameSize)
	treq := unix.TpacketReq{Block_size: txBlockSize, Block_nr: txBlocks, Frame_size: txFrameSize, Frame_nr: txFrames}
	if err = unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &treq); err != nil {
		return fmt.Errorf("tx ring: %w", err)
	}
	if p.tx, err = unix.Mmap(fd, 0, txBlockSize*txBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fmt.Errorf("mmap tx ring: %w", err)
	}
	if err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: p.ifindex}); err != nil {
		return fmt.Errorf("bind tx: %w", err)
	}
	p.txHead, p.txTail, p.txQueued, p.txDirty = 0, 0, 0, false
	return nil
}

func (p *afPort) closeTX() {
	if p.tx != nil {
		unix.Munmap(p.tx)
		p.tx = nil
	}
	if p.txFD >= 0 {
		unix.Close(p.txFD)
		p.txFD = -1
	}
}

func (p *afPort) close() {
	if p.rxFD >= 0 {
		unix.Close(p.rxFD)
	}
	p.closeTX()
}

// slot is the offset of TX slot i in the ring (slots do not straddle
// blocks, and a block has room left over).
func slot(i int) int { return i/txPerBlock*txBlockSize + i%txPerBlock*txFrameSize }

// put copies a frame into the next TX slot, with the offload metadata m.
// It refuses (rTxRejected) what the kernel would refuse, so that nothing
// is lost unseen inside the kernel: a frame shorter than an Ethernet
// header, longer than the MTU without segmentation metadata, or with
// metadata that does not fit the frame. rTxFull: no free slot. A
// super-frame on a socket without PACKET_VNET_HDR takes one slot per
// segment (g), all or none.
func (p *afPort) put(f []byte, m *vnet, g *gsoPlan) reason {
	if rs := p.txCheck(f, m); rs != rOK {
		return rs
	}
	if p.tx == nil {
		return rTxFull // the socket is being reopened
	}
	if m.gsoType != gsoNone && !p.txVnet {
		if txFrames-p.txQueued < g.n {
			return rTxFull
		}
		for k := 0; k < g.n; k++ {
			off := slot(p.txHead)
			n := g.build(f, k, p.tx[off+txDataOff:off+txFrameSize])
			p.mark(off, n)
		}
		return rOK
	}
	n := len(f)
	if p.txVnet {
		n += vnetLen
	}
	if p.txQueued == txFrames {
		return rTxFull
	}
	off := slot(p.txHead)
	d := p.tx[off+txDataOff:]
	if p.txVnet {
		m.encode(d)
		d = d[vnetLen:]
	}
	copy(d, f)
	p.mark(off, n)
	return rOK
}

// txCheck is the kernel's own check of a frame to send (tpacket_snd,
// virtio_net_hdr_to_skb), made before the frame goes in.
func (p *afPort) txCheck(f []byte, m *vnet) reason {
	n := len(f)
	if p.txVnet {
		n += vnetLen
	}
	switch {
	case len(f) < etherHdrLen || n > txFrameSize-txDataOff:
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

// mark hands the slot at off, holding n bytes, to the kernel.
func (p *afPort) mark(off, n int) {
	le.PutUint32(p.tx[off+4:], uint32(n))
	p.txLen[p.txHead] = uint32(n)
	if p.txVnet {
		p.txLen[p.txHead] -= vnetLen
	}
	atomic.StoreUint32(statusAt(p.tx, off), tpStatusSendRequest) // store-release: the kernel reads the frame after this
	p.txHead++
	if p.txHead == txFrames {
		p.txHead = 0
	}
	p.txQueued++
	p.txDirty = true
	if p.txQueued >= txFrames/2 {
		// A receive block can hold thousands of small frames: send and
		// free slots now rather than at the end of the burst.
		p.kick()
		pk, by := p.reap()
		p.takenPkts += pk
		p.takenBytes += by
	}
}

// kick makes the kernel send the marked slots. The kernel sends them in
// order and leaves a slot marked when it could not send it now (no send
// buffer, a busy device): the next kick starts there.
func (p *afPort) kick() {
	if !p.txDirty || p.txFD < 0 {
		return
	}
	p.txDirty = false
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(p.txFD), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			p.txErr = e
			if e != 0 {
				p.txDirty = true // try again at the next kick
			}
			return
		}
	}
}

// service kicks the port's queue, counts what the kernel took (reap), and
// skips a frame the device keeps refusing. A frame the device drops on
// transmit (ENOBUFS: a busy queue, or a frame it cannot take) is left
// marked by the kernel, which tries it again at every kick and sends
// nothing after it meanwhile: one bad frame would hold the port. After
// txSkipAfter of errors with no progress, fwd rewrites that slot's length
// to one the kernel refuses outright, which PACKET_LOSS has it skip, and
// counts the frame (skipped: tx_rejected).
func (p *afPort) service(now int64) (pkts, bytes uint64, skipped int) {
	p.kick()
	pkts, bytes = p.reap()
	pkts, bytes = pkts+p.takenPkts, bytes+p.takenBytes
	p.takenPkts, p.takenBytes = 0, 0
	switch {
	case p.txErr != unix.ENOBUFS || p.txQueued == 0 || pkts > 0:
		// Only ENOBUFS is the device refusing the frame at the kernel's
		// head; EAGAIN is the socket's send buffer, which frees itself.
		p.txErrSince = 0
	case p.txErrSince == 0:
		p.txErrSince = now
	case now-p.txErrSince >= txSkipAfter:
		if p.skipHead() {
			skipped = 1
		}
		p.txErrSince = now
	}
	return pkts, bytes, skipped
}

// skipHead makes the kernel skip the first slot it has not taken (the one
// it keeps retrying): its length is set to one the kernel refuses outright,
// which PACKET_LOSS has it skip at the next sendto. The slot is remembered
// as skipped, so reap does not count it as sent.
func (p *afPort) skipHead() bool {
	i := p.txTail
	for k := 0; k < p.txQueued; k++ {
		off := slot(i)
		if atomic.LoadUint32(statusAt(p.tx, off)) == tpStatusSendRequest { // load-acquire, as in reap
			n := 1
			if p.txVnet {
				n += vnetLen
			}
			// The slot stays marked; the kernel reads the length when it
			// comes to the slot again, after the sendto below.
			le.PutUint32(p.tx[off+4:], uint32(n))
			p.txLen[i] = txSkipped
			p.txDirty = true
			p.kick()
			return true
		}
		if i++; i == txFrames {
			i = 0
		}
	}
	return false
}

// reap counts the slots the kernel is done with since the last call (sent,
// or skipped as malformed under PACKET_LOSS) and frees them for put. A
// slot the kernel is still sending (TP_STATUS_SENDING: the device may not
// have read its pages yet; its completion will write the status) is not
// free: reap stops there.
func (p *afPort) reap() (pkts, bytes uint64) {
	for p.txQueued > 0 {
		off := slot(p.txTail)
		s := atomic.LoadUint32(statusAt(p.tx, off)) // load-acquire; pairs with the kernel's store when it is done with the slot
		if s&(tpStatusSendRequest|tpStatusSending) != 0 {
			break
		}
		if n := p.txLen[p.txTail]; n != txSkipped {
			pkts++
			bytes += uint64(n)
		}
		p.txTail++
		if p.txTail == txFrames {
			p.txTail = 0
		}
		p.txQueued--
	}
	return pkts, bytes
}

// afBackend drives all ports from one goroutine.
type afBackend struct {
	ports []*afPort
	d     *Datapath
	pfds  []unix.PollFd
	stop  atomic.Bool
	ready func() // called once the loop runs (service readiness)
	log   *slog.Logger
	next  int64 // next transmit check
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
}
func (b *afBackend) halt() { b.stop.Store(true) }

// send transmits a frame built outside a burst (ARP, NDP, released
// packets): plain frames with complete checksums.
func (b *afBackend) send(port int, f []byte) bool {
	p := b.ports[port]
	if p.put(f, &vnet{}, nil) != rOK {
		return false
	}
	p.kick()
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
			if rs := b.ports[out].put(f, &d.outMeta, &d.plan); rs != rOK {
				d.TxRefused(rs)
			}
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
	for !b.stop.Load() {
		now := time.Now().UnixNano()
		b.d.Begin(now)
		got := 0
		for i := range b.ports {
			got += b.rxBatch(i)
		}
		for i, p := range b.ports {
			pk, by, skipped := p.service(now)
			if pk > 0 {
				b.d.TxTaken(i, pk, by)
				p.txProgress = now
			}
			if skipped > 0 {
				b.d.c.reasons[rTxRejected] += uint64(skipped)
				p.txProgress = now
			}
		}
		if now >= b.next {
			b.next = now + int64(100*time.Millisecond)
			b.watchTX(now)
		}
		b.d.End()
		if first && b.ready != nil {
			b.ready()
			first = false
		}
		if got == 0 {
			pt := pollTimeout
			for _, p := range b.ports {
				if p.txQueued > 0 {
					pt = 1 // come back soon to see the kernel take them
				}
			}
			unix.Poll(b.pfds, pt)
		}
	}
}

// watchTX reports a port whose transmit ring holds frames the kernel has
// not taken for txStallAfter, and opens its transmit socket anew: what was
// queued there is dropped and counted, and the port transmits again.
func (b *afBackend) watchTX(now int64) {
	for i, p := range b.ports {
		if p.tx == nil && !b.reopenTX(i, now) { // an earlier reopen failed: put refuses frames meanwhile
			continue
		}
		if p.txQueued == 0 || p.txProgress == 0 {
			p.txProgress = now
			if p.txStalled {
				p.txStalled = false
				b.d.c.ports[i].txStalled = false
				b.log.Info("transmit resumed", "port", p.name)
			}
			continue
		}
		if now-p.txProgress < txStallAfter {
			continue
		}
		lost := p.txQueued
		b.d.c.ports[i].txStalls++
		b.d.c.reasons[rTxRejected] += uint64(lost)
		if now-p.txLogged >= txStallLogEvery {
			p.txLogged = now
			b.log.Warn("transmit stalled: the kernel took no frame for 2 s; reopening the transmit socket",
				"port", p.name, "dropped", lost, "stalls", b.d.c.ports[i].txStalls)
		}
		p.txStalled = true
		b.d.c.ports[i].txStalled = true
		p.closeTX()
		b.reopenTX(i, now)
		p.txProgress = now
	}
}

// reopenTX opens port i's transmit socket anew; on failure it is left
// closed (put refuses frames, counted) and tried again at the next check.
func (b *afBackend) reopenTX(i int, now int64) bool {
	p := b.ports[i]
	err := p.openTX()
	if err == nil {
		return true
	}
	p.closeTX()
	p.txQueued = 0
	if now-p.txErrLogged >= txStallLogEvery {
		p.txErrLogged = now
		b.log.Error("reopen transmit socket", "port", p.name, "err", err)
	}
	return false
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
	for _, p := range b.ports {
		p.close()
	}
}
