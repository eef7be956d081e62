package fwd

// The kernel fast path (fwd.fastpath: kernel, AF_PACKET backend): frames of
// rules whose capture is none never reach user space. A tc program fwd
// attaches to each port's ingress (tcx) rewrites them, as the datapath
// would, and redirects them to the port they leave on; a socket filter on
// the port's receive socket drops the same frames there, so that fwd does
// not forward them a second time. Both programs take the same decision
// (decide, below) from the same map, which fwd fills from its table and
// its neighbor entries at each housekeeping (sync).
//
// Why: a frame through user space is copied twice (recvmmsg, sendmmsg) and
// handed over between threads twice, while the kernel's own forwarding
// moves a TSO super-frame from one veth to the next without a copy. A rule
// that keeps no copy needs neither.
//
// A frame takes the fast path only when everything the datapath would do
// to it is the plain case; anything else goes on to the socket and the
// datapath, which counts, answers or drops it as ever:
//
//   - no VLAN tag; IPv4 with a 20-byte header (options: the datapath's
//     policy), not a fragment, TTL above 1, TCP or UDP (ICMP errors quote
//     headers the rewrite must follow), its total length within the frame
//     and holding the TCP or UDP header;
//   - addressed to the receiving port's MAC (a broadcast or another host's
//     frame is the datapath's to refuse);
//   - (port, destination, source) is a rule's key, the rule's capture is
//     none, the next hop's MAC is known (incomplete: the datapath queues
//     and asks), and the frame fits the outgoing port's MTU, or is a
//     super-frame whose segments do.
//
// The rewrite: source and destination addresses, TTL - 1, the IPv4 and
// TCP/UDP checksums updated by the kernel's helpers (which keep partial
// checksums and CHECKSUM_COMPLETE sums right, and a zero UDP checksum
// zero), the MACs set from the neighbor; then bpf_redirect to the
// outgoing port. Counted per rule and direction once rewritten, as it is
// redirected (a per-CPU array, one frame and its length per super-frame,
// as the datapath counts them), and added to the rule's, the ports' and
// the forwarded counters when fwd publishes its statistics: a frame the
// outgoing device then drops (link down) is in its TX count, which for
// fwd's own frames counts what the kernel took.
//
// Maps. rules: hash, key 12 bytes (ingress ifindex u32 host order, then
// destination and source addresses as on the wire), value 40 bytes:
//
//	 0  4  outgoing ifindex (host order)
//	 4  4  new source address (as on the wire)
//	 8  4  new destination address
//	12  4  counter slot (host order)
//	16  6  destination MAC (the next hop's)
//	22  6  source MAC (the outgoing port's)
//	28  6  the receiving port's MAC (the frame's destination must be it)
//	34  2  longest frame without GSO: outgoing MTU + 14 (host order)
//	36  2  outgoing MTU: a super-frame's segments (IPv4 header, TCP or
//	       UDP header, gso_size bytes) must fit it
//	38  2  zero
//
// counters: per-CPU array of {frames u64, bytes u64} by counter slot.
//
// Between the socket filter's decision and the tc program's, sync may
// change the map: a frame of a rule being edited can then be forwarded by
// both or by neither, once, as a frame in flight during an edit can be
// lost anyway.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

const (
	fpKeySize   = 12
	fpValueSize = 40
	// fpMaxRules: the (rule, direction) pairs the maps hold. The counter
	// array is per CPU (16 bytes a slot on every possible CPU, allocated
	// at start): 8 192 slots are 128 KiB a CPU. Rules beyond it go
	// through fwd.
	fpMaxRules = 8192
	// __sk_buff fields read (uapi/linux/bpf.h).
	skbLen         = 0
	skbVlanPresent = 20
	skbIfindex     = 40
	skbGSOSegs     = 164
	skbGSOSize     = 176
	// helper flags
	bpfPseudoHdr    = 0x10
	bpfMarkMangled0 = 0x20
	tcxNext         = -1 // TCX_NEXT: on to the next program, then the stack
	tcActShot       = 2
)

type fpKey [fpKeySize]byte
type fpValue [fpValueSize]byte

type fpCount struct{ Frames, Bytes uint64 }

// fastpath is the kernel fast path of an AF_PACKET backend.
type fastpath struct {
	rules, counts *ebpf.Map
	tc, filter    *ebpf.Program
	links         []link.Link
	// sync state: what the map holds, and the scratch for what it should.
	applied, want map[fpKey]fpValue
	// Counter slots: one per (rule id, direction) in the map, given when
	// it enters and freed (zeroed, after a last collect) when it leaves.
	slots  map[fpSlotKey]uint32
	slot   []fpSlotState // by slot number
	free   []uint32
	percpu []fpCount
	zero   []fpCount // a slot's value on every CPU, zero
}

// fpSlotState is a counter slot's state: whose it is, its ports, what was
// collected of it so far.
type fpSlotState struct {
	key     fpSlotKey
	used    bool // in the map now (else freed at the next collect)
	in, out uint8
	last    fpCount
}

type fpSlotKey struct {
	id  uint32
	dir uint8
}

// newFastpath loads the programs, attaches the tc program to every port's
// ingress and the filter to every port's receive socket.
func newFastpath(b *afBackend) (*fastpath, error) {
	fp, err := loadFastpath()
	if err != nil {
		return nil, err
	}
	// The tc programs first, at the head of each port's chain (a program
	// before ours that passed or dropped these frames would leave them to
	// nobody: the filter takes them from fwd's socket); then the filters,
	// taken off again if one cannot go on, so that a fallback to the
	// socket path leaves nothing behind.
	for _, p := range b.ports {
		l, err := link.AttachTCX(link.TCXOptions{Interface: p.ifindex, Program: fp.tc, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		if err != nil {
			fp.close()
			return nil, fmt.Errorf("fastpath: tc ingress on %s (tcx needs Linux 6.6): %w", p.name, err)
		}
		fp.links = append(fp.links, l)
	}
	for i, p := range b.ports {
		if err := unix.SetsockoptInt(p.rxFD, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, fp.filter.FD()); err != nil {
			for _, q := range b.ports[:i] {
				unix.SetsockoptInt(q.rxFD, unix.SOL_SOCKET, unix.SO_DETACH_BPF, 0)
			}
			fp.close()
			return nil, fmt.Errorf("fastpath: socket filter on %s: %w", p.name, err)
		}
	}
	return fp, nil
}

// loadFastpath makes the maps and loads the programs, attached nowhere.
func loadFastpath() (*fastpath, error) {
	fp := &fastpath{applied: map[fpKey]fpValue{}, want: map[fpKey]fpValue{}, slots: map[fpSlotKey]uint32{}}
	fp.zero = make([]fpCount, ebpf.MustPossibleCPU())
	var err error
	fp.rules, err = ebpf.NewMap(&ebpf.MapSpec{Name: "fmcap_rules", Type: ebpf.Hash, KeySize: fpKeySize, ValueSize: fpValueSize, MaxEntries: fpMaxRules})
	if err != nil {
		return nil, fmt.Errorf("fastpath: rule map: %w", err)
	}
	fp.counts, err = ebpf.NewMap(&ebpf.MapSpec{Name: "fmcap_counts", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: fpMaxRules})
	if err != nil {
		fp.close()
		return nil, fmt.Errorf("fastpath: counter map: %w", err)
	}
	if fp.tc, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "fmcap_fwd", Type: ebpf.SchedCLS, License: "GPL", Instructions: fp.tcProgram()}); err != nil {
		fp.close()
		return nil, fmt.Errorf("fastpath: tc program: %w", err)
	}
	if fp.filter, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "fmcap_rxfilter", Type: ebpf.SocketFilter, License: "GPL", Instructions: fp.filterProgram()}); err != nil {
		fp.close()
		return nil, fmt.Errorf("fastpath: socket filter: %w", err)
	}
	return fp, nil
}

// close detaches and frees what newFastpath made (the socket filters go
// with their sockets).
func (fp *fastpath) close() {
	for _, l := range fp.links {
		l.Close()
	}
	for _, p := range []*ebpf.Program{fp.tc, fp.filter} {
		if p != nil {
			p.Close()
		}
	}
	for _, m := range []*ebpf.Map{fp.rules, fp.counts} {
		if m != nil {
			m.Close()
		}
	}
}

// Stack of both programs (offsets from the frame pointer): the first 34
// bytes of the frame (Ethernet and IPv4 header) at hdr, the map key at key,
// the counter slot at slot. The verifier wants stack accesses aligned to
// their size: hdr is placed so that the addresses (frame bytes 26..33) are
// at multiples of 4, and the MAC is compared in halves.
const (
	fpHdr  = -50 // 34 bytes: -50 .. -17
	fpKeyO = -64 // 12 bytes
	fpSlot = -68 // 4 bytes
	// frame offsets within hdr
	hEthType = fpHdr + 12
	hVerIHL  = fpHdr + 14
	hTotLen  = fpHdr + 16
	hFrag    = fpHdr + 20
	hTTL     = fpHdr + 22
	hProto   = fpHdr + 23
	hSrc     = fpHdr + 26
	hDst     = fpHdr + 30
)

// decide is the decision both programs take, with the context in R6. It
// falls through with the rule's map value in R7 for a fast-path frame and
// jumps to "punt" otherwise.
func (fp *fastpath) decide() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbVlanPresent, asm.Word),
		asm.JNE.Imm(asm.R0, 0, "punt"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, fpHdr),
		asm.Mov.Imm(asm.R4, 34),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "punt"), // shorter than 34 bytes
		asm.LoadMem(asm.R0, asm.RFP, hEthType, asm.Half),
		asm.JNE.Imm(asm.R0, 0x0008, "punt"), // 08 00 read little-endian
		asm.LoadMem(asm.R0, asm.RFP, hVerIHL, asm.Byte),
		asm.JNE.Imm(asm.R0, 0x45, "punt"),
		asm.LoadMem(asm.R0, asm.RFP, hFrag, asm.Half),
		asm.And.Imm(asm.R0, 0xff3f), // MF and the offset, read little-endian
		asm.JNE.Imm(asm.R0, 0, "punt"),
		asm.LoadMem(asm.R0, asm.RFP, hTTL, asm.Byte),
		asm.JLE.Imm(asm.R0, 1, "punt"),
		// The IPv4 total length (R9) is within the frame (which may be
		// padded) and holds the L4 header: what the rewrite touches is
		// there, and a frame whose lengths disagree is fwd's to refuse.
		asm.LoadMem(asm.R9, asm.RFP, hTotLen, asm.Half),
		asm.HostTo(asm.BE, asm.R9, asm.Half),
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.Add.Imm(asm.R1, etherHdrLen),
		asm.LoadMem(asm.R2, asm.R6, skbLen, asm.Word),
		asm.JGT.Reg(asm.R1, asm.R2, "punt"),
		asm.LoadMem(asm.R0, asm.RFP, hProto, asm.Byte),
		asm.JEq.Imm(asm.R0, protoTCP, "tcp"),
		asm.JNE.Imm(asm.R0, protoUDP, "punt"),
		asm.JLT.Imm(asm.R9, 20+8, "punt"),
		asm.Ja.Label("l4"),
		asm.JLT.Imm(asm.R9, 20+20, "punt").WithSymbol("tcp"),
		asm.LoadMem(asm.R0, asm.R6, skbIfindex, asm.Word).WithSymbol("l4"),
		asm.StoreMem(asm.RFP, fpKeyO, asm.R0, asm.Word),
		asm.LoadMem(asm.R0, asm.RFP, hDst, asm.Word),
		asm.StoreMem(asm.RFP, fpKeyO+4, asm.R0, asm.Word),
		asm.LoadMem(asm.R0, asm.RFP, hSrc, asm.Word),
		asm.StoreMem(asm.RFP, fpKeyO+8, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, fp.rules.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKeyO),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "punt"),
		asm.Mov.Reg(asm.R7, asm.R0),
		// The frame's destination MAC is the receiving port's.
		asm.LoadMem(asm.R1, asm.RFP, fpHdr, asm.Half),
		asm.LoadMem(asm.R2, asm.R7, 28, asm.Half),
		asm.JNE.Reg(asm.R1, asm.R2, "punt"),
		asm.LoadMem(asm.R1, asm.RFP, fpHdr+2, asm.Half),
		asm.LoadMem(asm.R2, asm.R7, 30, asm.Half),
		asm.JNE.Reg(asm.R1, asm.R2, "punt"),
		asm.LoadMem(asm.R1, asm.RFP, fpHdr+4, asm.Half),
		asm.LoadMem(asm.R2, asm.R7, 32, asm.Half),
		asm.JNE.Reg(asm.R1, asm.R2, "punt"),
		// It fits the outgoing MTU, or its segments do.
		asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 34, asm.Half),
		asm.JLE.Reg(asm.R1, asm.R2, "fast"),
		// A super-frame: each segment is gso_size bytes of payload behind
		// the IPv4 header and the UDP header, or the TCP header of the
		// length its data offset says (read here: only now needed).
		asm.LoadMem(asm.R8, asm.R6, skbGSOSize, asm.Word),
		asm.JEq.Imm(asm.R8, 0, "punt"),
		asm.Add.Imm(asm.R8, 20+8),
		asm.LoadMem(asm.R0, asm.RFP, hProto, asm.Byte),
		asm.JNE.Imm(asm.R0, protoTCP, "gsofit"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Imm(asm.R2, etherHdrLen+20+12),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, fpSlot),
		asm.Mov.Imm(asm.R4, 1),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, "punt"),
		asm.LoadMem(asm.R0, asm.RFP, fpSlot, asm.Byte),
		asm.RSh.Imm(asm.R0, 4),
		asm.LSh.Imm(asm.R0, 2),
		asm.Add.Imm(asm.R8, -8),
		asm.Add.Reg(asm.R8, asm.R0),
		asm.LoadMem(asm.R2, asm.R7, 36, asm.Half).WithSymbol("gsofit"),
		asm.JGT.Reg(asm.R8, asm.R2, "punt"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("fast"),
	}
}

// filterProgram is the receive sockets' filter: 0 (drop) for a frame the
// tc program forwards, the whole frame otherwise.
func (fp *fastpath) filterProgram() asm.Instructions {
	p := fp.decide()
	return append(p,
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("punt"),
		asm.Return(),
	)
}

// tcProgram counts, rewrites and redirects a fast-path frame.
func (fp *fastpath) tcProgram() asm.Instructions {
	// A helper call that changes the frame: R1 the context, R2..R5 as args
	// set them; a failure gives the frame up ("shot").
	rewrite := func(fn asm.BuiltinFunc, args ...asm.Instruction) asm.Instructions {
		p := append(asm.Instructions{asm.Mov.Reg(asm.R1, asm.R6)}, args...)
		return append(p, fn.Call(), asm.JNE.Imm(asm.R0, 0, "shot"))
	}
	// A 4-byte address's change (old on the stack at old, new in the rule's
	// value at nv) applied to the L4 sum (offset R8, flags R9, set by
	// protocol) or to the IPv4 header's sum.
	l4 := func(old, nv int16) asm.Instructions {
		return rewrite(asm.FnL4CsumReplace, asm.Mov.Reg(asm.R2, asm.R8),
			asm.LoadMem(asm.R3, asm.RFP, old, asm.Word), asm.LoadMem(asm.R4, asm.R7, nv, asm.Word), asm.Mov.Reg(asm.R5, asm.R9))
	}
	l3 := func(old, nv int16) asm.Instructions {
		return rewrite(asm.FnL3CsumReplace, asm.Mov.Imm(asm.R2, etherHdrLen+10),
			asm.LoadMem(asm.R3, asm.RFP, old, asm.Word), asm.LoadMem(asm.R4, asm.R7, nv, asm.Word), asm.Mov.Imm(asm.R5, 4))
	}
	// n bytes from base+off (the stack or the rule's value) into the frame at at.
	store := func(at int32, base asm.Register, off, n int32) asm.Instructions {
		return rewrite(asm.FnSkbStoreBytes, asm.Mov.Imm(asm.R2, at),
			asm.Mov.Reg(asm.R3, base), asm.Add.Imm(asm.R3, off), asm.Mov.Imm(asm.R4, n), asm.Mov.Imm(asm.R5, 0))
	}
	srcL4 := l4(hSrc, 4)
	srcL4[0] = srcL4[0].WithSymbol("csum")
	p := fp.decide()
	for _, part := range []asm.Instructions{
		{
			// The L4 checksum: its offset and the helper's flags by protocol.
			asm.LoadMem(asm.R0, asm.RFP, hProto, asm.Byte),
			asm.Mov.Imm(asm.R8, etherHdrLen+20+16),
			asm.Mov.Imm(asm.R9, bpfPseudoHdr|4),
			asm.JEq.Imm(asm.R0, protoTCP, "csum"),
			asm.Mov.Imm(asm.R8, etherHdrLen+20+6),
			asm.Mov.Imm(asm.R9, bpfPseudoHdr|bpfMarkMangled0|4),
		},
		// Source, then destination: the L4 sum (pseudo-header), the IPv4
		// header sum; then the TTL's word in the header sum.
		srcL4, l4(hDst, 8), l3(hSrc, 4), l3(hDst, 8),
		rewrite(asm.FnL3CsumReplace, asm.Mov.Imm(asm.R2, etherHdrLen+10),
			asm.LoadMem(asm.R3, asm.RFP, hTTL, asm.Half), // TTL and protocol, as on the wire
			asm.Mov.Reg(asm.R4, asm.R3),
			asm.Add.Imm(asm.R4, -1), // the TTL is the low byte read little-endian, above 1
			asm.StoreMem(asm.RFP, hTTL, asm.R4, asm.Half),
			asm.Mov.Imm(asm.R5, 2)),
		// The new TTL, then the addresses (the value's bytes 4..11), then
		// the MACs (its bytes 16..27).
		store(etherHdrLen+8, asm.RFP, hTTL, 1),
		store(etherHdrLen+12, asm.R7, 4, 8),
		store(0, asm.R7, 16, 12),
		{
			// Count, once the frame is what is sent: one frame, its length.
			asm.LoadMem(asm.R0, asm.R7, 12, asm.Word),
			asm.StoreMem(asm.RFP, fpSlot, asm.R0, asm.Word),
			asm.LoadMapPtr(asm.R1, fp.counts.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, fpSlot),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "counted"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
			asm.LoadMem(asm.R2, asm.R0, 8, asm.DWord),
			asm.Add.Reg(asm.R2, asm.R1),
			asm.StoreMem(asm.R0, 8, asm.R2, asm.DWord),
			asm.LoadMem(asm.R1, asm.R7, 0, asm.Word).WithSymbol("counted"),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
			asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("punt"),
			asm.Return(),
			// A helper failed half-way through the rewrite: the frame is
			// neither the one received nor the one to send.
			asm.Mov.Imm(asm.R0, tcActShot).WithSymbol("shot"),
			asm.Return(),
		},
	} {
		p = append(p, part...)
	}
	return p
}

// sync makes the rule map what d's table and neighbor entries say: an
// entry per rule of capture none and direction whose next hop's MAC is
// known. Called on the poll goroutine, which owns d's state.
func (fp *fastpath) sync(b *afBackend, d *Datapath) error {
	t := d.cur
	clear(fp.want)
	for i := range fp.slot {
		fp.slot[i].used = false
	}
	if t != nil {
		for i := range t.rules {
			r := &t.rules[i]
			if r.mode != ModeNone || r.route || r.v6 {
				continue
			}
			for dir := uint8(0); dir < 2; dir++ {
				n := d.nh[i][dir]
				if n == nil || !n.usable() {
					continue
				}
				in, out := int(r.outPort[1-dir]), int(r.outPort[dir])
				sl, ok := fp.slotFor(r.id, dir, in, out)
				if !ok {
					continue // every slot taken: this rule goes through fwd
				}
				var k fpKey
				var v fpValue
				binary.NativeEndian.PutUint32(k[0:], uint32(b.ports[in].ifindex))
				// The key's addresses: where the packet was sent (the
				// other direction's new source) and from (its new
				// destination).
				be.PutUint32(k[4:], r.newSrc[1-dir])
				be.PutUint32(k[8:], r.newDst[1-dir])
				binary.NativeEndian.PutUint32(v[0:], uint32(b.ports[out].ifindex))
				be.PutUint32(v[4:], r.newSrc[dir])
				be.PutUint32(v[8:], r.newDst[dir])
				binary.NativeEndian.PutUint32(v[12:], sl)
				copy(v[16:22], n.mac[:])
				copy(v[22:28], b.ports[out].mac[:])
				copy(v[28:34], b.ports[in].mac[:])
				mtu := d.ports[out].mtu
				binary.NativeEndian.PutUint16(v[34:], uint16(min(mtu+etherHdrLen, 0xffff)))
				binary.NativeEndian.PutUint16(v[36:], uint16(min(mtu, 0xffff)))
				fp.want[k] = v
			}
		}
	}
	var errs []error
	for k, v := range fp.want {
		if old, ok := fp.applied[k]; ok && old == v {
			continue
		}
		if err := fp.rules.Put(k[:], v[:]); err != nil {
			errs = append(errs, err)
			continue
		}
		fp.applied[k] = v
	}
	for k := range fp.applied {
		if _, ok := fp.want[k]; !ok {
			if err := fp.rules.Delete(k[:]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
				continue
			}
			delete(fp.applied, k)
		}
	}
	return errors.Join(errs...)
}

// slotFor is the counter slot of a rule id and direction, kept while the
// pair is in the map (a rule's counts follow its id across edits, as the
// datapath's do); false when every slot is taken.
func (fp *fastpath) slotFor(id uint32, dir uint8, in, out int) (uint32, bool) {
	k := fpSlotKey{id, dir}
	n, ok := fp.slots[k]
	if !ok {
		switch {
		case len(fp.free) > 0:
			n = fp.free[len(fp.free)-1]
			fp.free = fp.free[:len(fp.free)-1]
		case len(fp.slot) < fpMaxRules:
			n = uint32(len(fp.slot))
			fp.slot = append(fp.slot, fpSlotState{})
		default:
			return 0, false
		}
		fp.slots[k] = n
		fp.slot[n] = fpSlotState{key: k}
	}
	sl := &fp.slot[n]
	sl.used, sl.in, sl.out = true, uint8(in), uint8(out)
	return n, true
}

// collect adds what the tc program forwarded since the last call to d's
// counters: the rule's, the ports' (received on one, sent on the other)
// and the forwarded total; a slot no longer in the map is counted a last
// time, zeroed and freed.
func (fp *fastpath) collect(d *Datapath) error {
	for n := range fp.slot {
		sl := &fp.slot[n]
		if _, ok := fp.slots[sl.key]; !ok {
			continue // free
		}
		if err := fp.counts.Lookup(uint32(n), &fp.percpu); err != nil {
			return fmt.Errorf("fastpath: counters: %w", err)
		}
		var now fpCount
		for _, c := range fp.percpu {
			now.Frames += c.Frames
			now.Bytes += c.Bytes
		}
		df, db := now.Frames-sl.last.Frames, now.Bytes-sl.last.Bytes
		sl.last = now
		if df != 0 {
			if c := d.byID[sl.key.id]; c != nil {
				c.pkts[sl.key.dir] += df
				c.bytes[sl.key.dir] += db
			}
			d.c.reasons[rOK] += df
			d.c.fastPath += df
			d.c.ports[sl.in].rxPkts += df
			d.c.ports[sl.in].rxBytes += db
			d.c.ports[sl.out].txPkts += df
			d.c.ports[sl.out].txBytes += db
		}
		if !sl.used {
			if err := fp.counts.Put(uint32(n), fp.zero); err != nil {
				return fmt.Errorf("fastpath: counters: %w", err)
			}
			delete(fp.slots, sl.key)
			fp.free = append(fp.free, uint32(n))
		}
	}
	return nil
}
