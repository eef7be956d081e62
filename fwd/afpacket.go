package main

// The AF_PACKET backend (pure Go, the default build). Per port, two sockets
// share nothing but the interface:
//
//   - receive: TPACKET_V3, a ring of rxBlocks blocks of rxBlockSize bytes
//     mmap'd from the kernel. The kernel fills a block with many frames and
//     hands it over when full or after rxBlockTimeout; we walk its frames
//     in place (rewriting them there) and hand the block back. Our own
//     transmissions are not looped back (PACKET_IGNORE_OUTGOING).
//   - transmit: TPACKET_V2 with a TX ring of txFrames slots. A frame is
//     copied into the next free slot and marked; one sendto per port per
//     burst makes the kernel send every marked slot, bypassing the qdisc.
//     The socket is bound with protocol 0, so it receives nothing.
//
// A full TX ring drops the frame with a counted reason; the loop never
// waits on transmit. When no port has a block ready the loop sleeps in
// poll(2) on the receive sockets (at most pollTimeout, for housekeeping).
//
// The frame layouts used (linux/if_packet.h):
//
//	tpacket_block_desc: version u32 @0, offset_to_priv u32 @4,
//	  block_status u32 @8, num_pkts u32 @12, offset_to_first_pkt u32 @16,
//	  blk_len u32 @20, seq_num u64 @24
//	tpacket3_hdr: tp_next_offset u32 @0, tp_sec u32 @4, tp_nsec u32 @8,
//	  tp_snaplen u32 @12, tp_len u32 @16, tp_status u32 @20, tp_mac u16 @24
//	tpacket2_hdr (TX): tp_status u32 @0, tp_len u32 @4, tp_snaplen u32 @8,
//	  tp_mac u16 @12, ...; data at offset 32 = TPACKET2_HDRLEN - sizeof(sockaddr_ll)

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	rxBlockSize    = 1 << 20
	rxBlocks       = 16
	rxBlockTimeout = 1 // ms: bounds the latency a quiet link adds
	txFrameSize    = 1 << 14
	txFrames       = 1024
	txDataOff      = 32
	pollTimeout    = 10 // ms

	tpStatusKernel      = 0
	tpStatusUser        = 1
	tpStatusSendRequest = 1
	tpStatusWrongFormat = 4
)

var le = binary.LittleEndian

type afPort struct {
	name    string
	ifindex int
	mac     [6]byte
	rxFD    int
	rx      []byte
	rxBlk   int
	txFD    int
	tx      []byte
	txHead  int
	txDirty bool
	drops   uint64 // kernel receive drops so far (PACKET_STATISTICS resets on read)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// status words are shared with the kernel: read and written atomically.
func statusAt(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

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
	p := &afPort{name: dev, ifindex: ifi.Index, rxFD: -1, txFD: -1}
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
	if err = unix.SetsockoptInt(p.rxFD, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3", err)
	}
	req := unix.TpacketReq3{
		Block_size: rxBlockSize, Block_nr: rxBlocks, Frame_size: 2048,
		Frame_nr: rxBlockSize / 2048 * rxBlocks, Retire_blk_tov: rxBlockTimeout,
	}
	if err = unix.SetsockoptTpacketReq3(p.rxFD, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("rx ring", err)
	}
	if p.rx, err = unix.Mmap(p.rxFD, 0, rxBlockSize*rxBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_LOCKED|unix.MAP_POPULATE); err != nil {
		if p.rx, err = unix.Mmap(p.rxFD, 0, rxBlockSize*rxBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
			return fail("mmap rx ring", err)
		}
	}
	_ = unix.SetsockoptInt(p.rxFD, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err = unix.Bind(p.rxFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.ifindex}); err != nil {
		return fail("bind", err)
	}
	// Transmit socket.
	if p.txFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail("socket", err)
	}
	if err = unix.SetsockoptInt(p.txFD, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return fail("TPACKET_V2", err)
	}
	_ = unix.SetsockoptInt(p.txFD, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	treq := unix.TpacketReq{Block_size: txFrameSize * 64, Block_nr: txFrames / 64, Frame_size: txFrameSize, Frame_nr: txFrames}
	if err = unix.SetsockoptTpacketReq(p.txFD, unix.SOL_PACKET, unix.PACKET_TX_RING, &treq); err != nil {
		return fail("tx ring", err)
	}
	if p.tx, err = unix.Mmap(p.txFD, 0, txFrameSize*txFrames, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap tx ring", err)
	}
	if err = unix.Bind(p.txFD, &unix.SockaddrLinklayer{Protocol: 0, Ifindex: p.ifindex}); err != nil {
		return fail("bind tx", err)
	}
	return p, nil
}

func (p *afPort) close() {
	if p.rx != nil {
		unix.Munmap(p.rx)
	}
	if p.tx != nil {
		unix.Munmap(p.tx)
	}
	if p.rxFD >= 0 {
		unix.Close(p.rxFD)
	}
	if p.txFD >= 0 {
		unix.Close(p.txFD)
	}
}

// put copies a frame into the next TX slot. False when the ring is full or
// the frame does not fit a slot.
func (p *afPort) put(f []byte) bool {
	if len(f) > txFrameSize-txDataOff {
		return false
	}
	off := p.txHead * txFrameSize
	st := statusAt(p.tx, off)
	s := atomic.LoadUint32(st) // load-acquire; pairs with the kernel's store when it frees the slot
	if s == tpStatusWrongFormat {
		s = tpStatusKernel // the kernel refused it; the slot is ours again
	}
	if s != 0 {
		return false
	}
	copy(p.tx[off+txDataOff:], f)
	le.PutUint32(p.tx[off+4:], uint32(len(f)))
	atomic.StoreUint32(st, tpStatusSendRequest) // store-release: the kernel reads the frame after this
	p.txHead++
	if p.txHead == txFrames {
		p.txHead = 0
	}
	p.txDirty = true
	return true
}

// kick makes the kernel send the marked slots.
func (p *afPort) kick() {
	if !p.txDirty {
		return
	}
	p.txDirty = false
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(p.txFD), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			return
		}
	}
}

// afBackend drives all ports from one goroutine.
type afBackend struct {
	ports []*afPort
	d     *Datapath
	pfds  []unix.PollFd
	stop  atomic.Bool
	ready func() // called once the loop runs (service readiness)
}

func newAFBackend(ports []Port) (*afBackend, error) {
	b := &afBackend{}
	for _, p := range ports {
		ap, err := openAFPacket(p.Device)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("port %s: %w", p.Name, err)
		}
		b.ports = append(b.ports, ap)
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

func (b *afBackend) setDatapath(d *Datapath, ready func()) {
	b.d, b.ready = d, ready
	d.nic = b.nicDrops
}
func (b *afBackend) halt() { b.stop.Store(true) }

func (b *afBackend) send(port int, f []byte) bool {
	p := b.ports[port]
	if !p.put(f) {
		return false
	}
	p.kick()
	return true
}

// rxBlock handles the next ready block of port i, if any.
func (b *afBackend) rxBlock(i int) int {
	p := b.ports[i]
	base := p.rxBlk * rxBlockSize
	st := statusAt(p.rx, base+8)
	if atomic.LoadUint32(st)&tpStatusUser == 0 { // load-acquire; pairs with the kernel's block retire
		return 0
	}
	blk := p.rx[base : base+rxBlockSize]
	n := int(le.Uint32(blk[12:]))
	off := int(le.Uint32(blk[16:]))
	d := b.d
	for k := 0; k < n && off > 0 && off < rxBlockSize; k++ {
		h := blk[off:]
		snap, wire := int(le.Uint32(h[12:])), int(le.Uint32(h[16:]))
		mac := int(le.Uint16(h[24:]))
		status := le.Uint32(h[20:])
		if off+mac+snap <= rxBlockSize {
			d.now = int64(le.Uint32(h[4:]))*1e9 + int64(le.Uint32(h[8:]))
			f := blk[off+mac : off+mac+snap]
			if status&unix.TP_STATUS_VLAN_VALID != 0 {
				d.c.ports[i].rxPkts++
				d.drop(rVLAN)
			} else {
				if status&unix.TP_STATUS_CSUMNOTREADY != 0 {
					completeL4(f)
				}
				if out := d.Handle(i, f, wire); out >= 0 && !b.ports[out].put(f) {
					d.TxFailed(out, len(f))
				}
			}
		}
		next := int(le.Uint32(h[0:]))
		if next == 0 {
			break
		}
		off += next
	}
	atomic.StoreUint32(st, tpStatusKernel) // store-release: the block is the kernel's again
	p.rxBlk = (p.rxBlk + 1) % rxBlocks
	return n
}

// run is the poll loop. It returns when stop is set.
func (b *afBackend) run() {
	for i, p := range b.ports {
		b.pfds = append(b.pfds, unix.PollFd{Fd: int32(p.rxFD), Events: unix.POLLIN})
		_ = i
	}
	first := true
	for !b.stop.Load() {
		b.d.Begin(time.Now().UnixNano())
		got := 0
		for i := range b.ports {
			got += b.rxBlock(i)
		}
		for _, p := range b.ports {
			p.kick()
		}
		b.d.End()
		if first && b.ready != nil {
			b.ready()
			first = false
		}
		if got == 0 {
			unix.Poll(b.pfds, pollTimeout)
		}
	}
}

// nicDrops is how many frames the kernel could not put in port's receive
// ring (it was full).
func (b *afBackend) nicDrops(port int) uint64 {
	p := b.ports[port]
	if st, err := unix.GetsockoptTpacketStatsV3(p.rxFD, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		p.drops += uint64(st.Drops)
	}
	return p.drops
}

func (b *afBackend) close() {
	for _, p := range b.ports {
		p.close()
	}
}

// completeL4 replaces a partial L4 checksum (TP_STATUS_CSUMNOTREADY: the
// sender's kernel left it for a NIC that is not there) by the full one, so
// the incremental updates that follow are right and the receiver gets a
// valid packet.
func completeL4(f []byte) {
	var p ippkt
	var ck int
	var s uint32
	switch etherType(f) {
	case etherIPv4:
		if parseIPv4(f, &p) != rOK || p.frag || p.l4 == 0 {
			return
		}
		ck = l4CsumOff(p.proto)
	case etherIPv6:
		if parseIPv6(f, &p) != rOK || p.frag || p.l4 == 0 {
			return
		}
		ck = l4CsumOff6(p.proto)
	default:
		return
	}
	if ck < 0 || p.l4+ck+2 > p.end {
		return
	}
	f[p.l4+ck], f[p.l4+ck+1] = 0, 0
	if p.v6 {
		s = pseudoSum6(f, &p)
	} else {
		s = pseudoSum(f, &p)
	}
	c := csum(f[p.l4:p.end], s)
	if c == 0 && p.proto == protoUDP {
		c = 0xffff
	}
	be.PutUint16(f[p.l4+ck:], c)
}

// pseudoSum is the unfolded sum of the IPv4 pseudo-header.
func pseudoSum(f []byte, p *ippkt) uint32 {
	ip := p.ip
	s := uint32(be.Uint16(f[ip+12:])) + uint32(be.Uint16(f[ip+14:])) +
		uint32(be.Uint16(f[ip+16:])) + uint32(be.Uint16(f[ip+18:]))
	return s + uint32(p.proto) + uint32(p.end-p.l4)
}
