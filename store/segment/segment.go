// Package segment owns the index format: immutable segment files the
// indexer writes, and fmslice reads to choose which frames a query must
// decompress. Sequence numbers are the join key: a segment says in which
// groups of GroupSize consecutive seqs an address, a port or a protocol
// appears, and the writer's frame tables (store/chunk) turn groups into
// frames. Groups are aligned on seqs, not on the segment: group boundaries
// are the multiples of GroupSize, where the writer prefers to cut frames
// (chunk.SeqGroup), so that a candidate group is one frame to read, not two.
// This package is the format only: the decoder that makes a Packet from a
// frame, and the filters evaluated on segments, are package query.
//
// # Directory
//
//	seg-F-L.fmix    the segment for seqs F..L (20 digits each), immutable
//	.seg-*.tmp      a segment being written (ignored, removed at start)
//
// # Segment file (little-endian)
//
// A query reads a few terms of many segments, so a segment is read in
// place (mmap'd) and each part it uses is checked when used, by its own
// CRC-32C (Castagnoli): the header, gaps, group times, each posting list,
// each block of the term directory, the flows, the flow origins. A query over a 50 M-packet
// store touches a few hundred KiB of index, not its hundreds of MiB.
//
//	header, 64 bytes
//	  0  4  magic "FMIX"
//	  4  2  version (8; 7, 6 and 5 are read too: 7 has no flow origins,
//	        6 neither origin terms, 5 neither counts)
//	  6  2  reserved, zero
//	  8  4  group size G (seqs per group)
//	 12  4  group count N = L/G - F/G + 1 (0 when the segment is empty)
//	 16  8  first seq F (group g holds the seqs s of F..L with
//	        s/G = F/G + g: groups start at multiples of G)
//	 24  8  last seq L
//	 32  8  minimum capture time, Unix ns
//	 40  8  maximum capture time, Unix ns
//	 48  4  gap count
//	 52  4  term count
//	 56  8  packets indexed (L-F+1 minus the gaps)
//	groups: N × (minimum time i64, maximum time i64); a group with no
//	  indexed packet has minimum > maximum
//	gaps: gap count × (first seq u64, last seq u64): seqs in F..L the
//	  indexer never saw (it was overrun or down); queries scan them
//	postings: per term, in directory order, its groups as a group list
//	  (Elias-Fano with u = N: see ef.go), then the CRC-32C of those bytes u32
//	term directory, sorted by kind then key, term count × 24 bytes:
//	  kind u8 ('A' address, 'K' packet kind, 'P' port, 'T' IP protocol;
//	    version 7, the packet's origin (origin.go): 'd' direction, 'e'
//	    GWLB endpoint id, 'i' fwd's port index, 'r' rule id, 'v' VNI)
//	  key length u8, reserved u16, key [16] zero-padded (address: 16
//	    bytes, IPv4 mapped; port: 2 bytes big-endian; protocol and kind:
//	    1 byte; origin terms big-endian: direction 1 byte, fwd's port 2,
//	    VNI 3, rule 4, endpoint 8), offset of the term's postings from the
//	    postings' start u32
//	  (fixed-size entries: a query binary-searches the few terms it needs
//	  and never decodes the rest)
//	directory block checksums: the directory in blocks of 128 entries (the
//	  last may be shorter), the CRC-32C of each block u32
//	counts (version 6): per group, its packets uvarint and bytes on the
//	  wire uvarint, then the CRC-32C of those bytes u32 (a timeline
//	  without a filter reads only these); then per flow, in the flows'
//	  order, per group of its group list, in order, the flow's packets and
//	  bytes in that group (uvarints). fmslice timeline answers from them. About three bytes a
//	  (flow, group) pair: with flows interleaved packet by packet, about
//	  as many pairs as packets.
//	flows: count uvarint, then per flow (see flows.go for the key's order)
//	  kind u8 (the packet kind; bit 7 set: the flow has ports), proto u8,
//	  VLAN u16, address A, address B (IPv4: 4 bytes each; IPv6: 16),
//	  port A u16, port B u16, TCP flags seen u8 (OR of all packets),
//	  packets uvarint, bytes uvarint (on the wire), first time minus the
//	  segment's minimum time uvarint, last time minus first uvarint (ns),
//	  the groups as a group list (ef.go)
//	flow origins (version 8, floworigin.go): fmslice flows --by-origin
//	  answers from them
//	  origin count uvarint, then per distinct origin of the segment's
//	    packets: fwd's port u16, direction u8, rule u32, tunnel kind u8
//	    (internal/origin: 0 none, 1 GWLB, 2 Traffic Mirroring), blob
//	    length u8 (0, 20, 7 or 19, as the kind requires), blob (the
//	    chunk's metadata's bytes: GWLB endpoint, attachment, cookie; VNI
//	    and outer source), big-endian as on the wire
//	  then per flow, in the flows' order: entry count uvarint (1 or more),
//	    per entry, ascending by origin: origin uvarint (0: packets whose
//	    origin the indexer was not told; i+1: origin i), TCP flags seen at
//	    that origin u8, packets uvarint, bytes uvarint, first time minus
//	    the flow's first uvarint, last time minus the entry's first
//	    uvarint (ns); the entries' packets and bytes add up to the flow's.
//	    About 15 bytes an entry; a flow has an entry per direction.
//	footer, 64 bytes (versions 5 to 7: 48, the first 48 of these)
//	  0  8  offset of the postings
//	  8  8  offset of the term directory
//	 16  8  offset of the flows
//	 24  4  CRC-32C of the header
//	 28  4  CRC-32C of the gaps
//	 32  4  CRC-32C of the group times
//	 36  4  CRC-32C of the directory block checksums
//	 40  4  CRC-32C of the flows
//	 44  4  CRC-32C of the flows' counts (version 5: zero, no counts)
//	 48  8  offset of the flow origins (where the flows end)
//	 56  4  CRC-32C of the flow origins
//	 60  4  reserved, zero
//	trailer: CRC-32C of the footer u32, "XIMF"
//
// Opening checks the trailer, footer, header and gaps (a truncated file
// fails there); a part that fails its check when used marks the segment
// corrupt (Err), and the reader then treats all its seqs as unindexed.
// Version 5 (no counts) is read as version 6 without counts: the
// planner and flows use it as before, and fmslice timeline reads its
// seqs from the chunks. Versions 5 and 6 have no origin terms: an origin
// selection keeps all their groups (HasOrigins). Versions 5 to 7 have no
// flow origins: fmslice flows --by-origin reads their seqs from the
// chunks (HasFlowOrigins). Older versions (1: one CRC over the whole file, which a query had to read
// entirely; 2: groups counted from F; 3: group lists as uvarint deltas,
// a third larger; 4: flows with 16-byte IPv4 addresses and 8-byte times,
// from development builds only) are refused; indexer --rebuild replaces
// them.
package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/edsrzf/mmap-go"

	"github.com/fmcap/fmcap/internal/atomicfile"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/store/chunk"
)

const (
	magic      = "FMIX"
	trailMagic = "XIMF"
	version    = 8
	minVersion = 5 // the oldest read: no counts (6: no origin terms; 7: no flow origins)
	hdrSize    = 64

	KindAddr  = 'A'
	KindPort  = 'P'
	KindProto = 'T'
	KindKind  = 'K'

	// KeyCut is the kind term of groups holding a frame cut inside a
	// header the index reads: every filter keeps them.
	KeyCut = 0x80

	// DefaultGroupSize is seqs per group: the writer's frame alignment
	// (chunk.SeqGroup: it ends frames at group boundaries), well under the
	// packets of a frame, so a selective query decompresses little more
	// than it needs.
	DefaultGroupSize = chunk.SeqGroup
)

var (
	ErrCorrupt = errors.New("corrupt index segment")
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
)

// Segment is an opened segment: the header's figures and gaps, and the
// file's bytes, whose other parts are checked and decoded when asked for.
type Segment struct {
	GroupSize    uint32
	First, Last  uint64
	MinTS, MaxTS int64
	Indexed      uint64
	Gaps         [][2]uint64
	Name         string

	ng                 uint32
	groups             []byte // N × (min, max)
	post, dir, flows   []byte
	dirSums            []byte // one CRC per directory block
	groupsSum, flowSum uint32
	groupsOK           bool
	dirOK              []bool // directory blocks checked
	counts             []byte // version 6: group and flow counts (nil: version 5)
	countSum           uint32 // CRC of the flows' counts
	countsOK           bool   // the flows' counts checked
	forig              []byte // version 8: the flow origins (floworigin.go)
	forigSum           uint32
	forigOK            bool
	flowCounts         []byte // the flows' part of counts, once GroupCounts has run
	version            uint16
	err                error // the first part that failed its check
	m                  mmap.MMap
}

const dirBlock = 128 // directory entries per checksummed block

// Groups is the number of groups.
func (s *Segment) Groups() int { return int(s.ng) }

// GroupSeqs is the seq range of group g.
func (s *Segment) GroupSeqs(g uint32) (lo, hi uint64) {
	G := uint64(s.GroupSize)
	lo = (s.First/G + uint64(g)) * G
	return max(lo, s.First), min(lo+G-1, s.Last)
}

// GroupOf is the group of seq (which must be in First..Last).
func (s *Segment) GroupOf(seq uint64) uint32 {
	return uint32(seq/uint64(s.GroupSize) - s.First/uint64(s.GroupSize))
}

// groupCount is the number of groups of size g that seqs first..last touch.
func groupCount(first, last uint64, g uint32) uint64 {
	if last+1 <= first {
		return 0
	}
	return last/uint64(g) - first/uint64(g) + 1
}

// GroupTimes is the capture time range of group g (min > max: no packet
// indexed). The group times are checked on first use; if they fail, every
// group comes back as covering all time and Err says why.
func (s *Segment) GroupTimes(g int) (lo, hi int64) {
	if !s.groupsOK {
		if s.err == nil && crc32.Checksum(s.groups, crcTable) != s.groupsSum {
			s.fail("group times")
		}
		s.groupsOK = true
	}
	if s.err != nil {
		return math.MinInt64, math.MaxInt64
	}
	le := binary.LittleEndian
	return int64(le.Uint64(s.groups[g*16:])), int64(le.Uint64(s.groups[g*16+8:]))
}

// Err is the first damage found in the parts read so far: a caller that
// used the segment must check it, and if set, not trust what it got.
func (s *Segment) Err() error { return s.err }

func (s *Segment) fail(what string) {
	if s.err == nil && s.Name == "" {
		s.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	} else if s.err == nil {
		s.err = fmt.Errorf("%s: %w: %s", s.Name, ErrCorrupt, what)
	}
}

// Close releases the file's mapping (Open); the segment is unusable after.
func (s *Segment) Close() error {
	if s.m == nil {
		return nil
	}
	err := s.m.Unmap()
	s.m = nil
	return err
}

// Builder accumulates packets into a segment. Not safe for concurrent use.
//
// Terms with many values (addresses, ports, flows) are where an indexer
// spends its time: with thousands of flows interleaved, the tail of each
// term's growing list is a different cold cache line for every packet.
// So the builder keeps, per flow, only the last group it was seen in, and
// appends each (flow, group) it sees for the first time to one sequential
// buffer; Encode sorts those by flow (counting sort, stable, so groups
// stay ascending) and derives from them the lists of the flows' addresses
// and ports (termLists): a packet of a known flow touches its flow entry
// and nothing else. Packets outside flows (ARP, IP without both
// addresses) go to (term, group) buffers of their own, deduplicated the
// same way. Protocols, packet kinds and the cut mark have few values and
// keep plain lists.
type Builder struct {
	seg      Segment
	gmin     []int64 // group times
	gmax     []int64
	gpk      []uint64 // group packets and bytes
	gby      []uint64
	addrIdx  map[[16]byte]int32
	addrKeys [][16]byte
	addrLast []uint32         // per address: the last group it was added to, +1 (0: none)
	addrSeen pairs            // (address << 32 | group), in arrival order
	portIdx  [256]*[256]int32 // port → its index + 1 (0: not seen); pages allocated on first use
	portKeys []uint16
	portLast []uint32
	portSeen pairs // (port index << 32 | group)
	protos   [256][]uint32
	kinds    [4][]uint32
	cut      []uint32 // groups with a frame cut inside a header (Packet.Cut)
	flowTab  flowTable
	flows    []Flow // Groups left empty until Encode
	flowSeen pairs  // (flow << 32 | group)
	flowCnt  pairs  // per flowSeen entry: its packets << 40 | its bytes
	last     [2]struct {
		key [16]byte
		i   int32
	}
	lastFlow int32 // index of the last packet's flow, -1: none
	origIdx  map[Origin]int32
	origKeys []Origin
	origLast []uint32     // per origin: the last group it was added to, +1
	origSeen pairs        // (origin << 32 | group)
	lastOrig int32        // index of the last packet's origin, -1: none
	fo       []flowOrigin // the flows' origin entries (floworigin.go)
}

// NewBuilder starts a segment at seq first.
func NewBuilder(first uint64, groupSize uint32) *Builder {
	b := &Builder{
		seg:      Segment{GroupSize: groupSize, First: first, Last: first - 1, MinTS: math.MaxInt64, MaxTS: math.MinInt64},
		addrIdx:  map[[16]byte]int32{},
		lastFlow: -1,
		origIdx:  map[Origin]int32{},
		lastOrig: -1,
	}
	b.last[0].i, b.last[1].i = -1, -1
	return b
}

// pairs is an append-only list of (term << 32 | group) in blocks: growing
// it never copies what it holds (a slice grown by append copied about four
// times its final size, 100 MB a segment, and spent a third of the
// indexer's time doing so).
type pairs struct{ blocks [][]uint64 }

const pairBlock = 1 << 16

func (p *pairs) add(v uint64) {
	n := len(p.blocks)
	if n == 0 || len(p.blocks[n-1]) == cap(p.blocks[n-1]) {
		size := 64 // small segments (and tests) stay small
		if n > 0 {
			size = min(2*cap(p.blocks[n-1]), pairBlock)
		}
		p.blocks = append(p.blocks, make([]uint64, 0, size))
		n++
	}
	p.blocks[n-1] = append(p.blocks[n-1], v)
}

// seen adds (term, g) unless term was last seen in group g (last[term]
// holds that group + 1).
func seen(last *uint32, p *pairs, term int32, g uint32) {
	if *last != g+1 {
		*last = g + 1
		p.add(uint64(term)<<32 | uint64(g))
	}
}

// lists is each term's ascending group list (listsCounted without counts).
func lists(p *pairs, n int) [][]uint32 {
	out, _ := listsCounted(p, nil, n)
	return out
}

// termLists gives each address and port its ascending group list: the
// union of the group lists of the flows it is an end of (flowGroups) and of
// the groups of packets outside flows (addrSeen, portSeen). Most terms
// belong to one flow (a client's address and port), and their list is that
// flow's, shared; a term of many flows (a server's address, port 443) is
// merged by sorting when its lists are short and through a bitmap of the
// segment's groups when they are long. n is the number of groups in all
// the lists.
func (b *Builder) termLists(flowGroups [][]uint32) (addrs, ports [][]uint32, n int) {
	na, np := len(b.addrKeys), len(b.portKeys)
	// The flows of each term (addresses, then ports), as one array sliced
	// by start.
	start := make([]int32, na+np+1)
	each := func(fn func(i, t int32)) {
		for i := range b.flows {
			f := &b.flows[i]
			fn(int32(i), f.ai)
			fn(int32(i), f.bi)
			if f.api >= 0 {
				fn(int32(i), int32(na)+f.api)
				fn(int32(i), int32(na)+f.bpi)
			}
		}
	}
	each(func(_, t int32) { start[t+1]++ })
	for t := 1; t < len(start); t++ {
		start[t] += start[t-1]
	}
	of := make([]int32, start[len(start)-1])
	at := slices.Clone(start[:na+np])
	each(func(i, t int32) {
		of[at[t]] = i
		at[t]++
	})
	direct := append(lists(&b.addrSeen, na), lists(&b.portSeen, np)...)
	ng := len(b.gmin)
	var words Bits
	out := make([][]uint32, na+np)
	for t := range out {
		fs, d := of[start[t]:start[t+1]], direct[t]
		var l []uint32
		switch total := len(d); {
		case len(fs) == 0:
			l = d
		case len(fs) == 1 && len(d) == 0:
			l = flowGroups[fs[0]]
		default:
			for _, f := range fs {
				total += len(flowGroups[f])
			}
			if total < ng/512 { // short: sort them together (a bitmap costs ng/64 words twice)
				l = append(make([]uint32, 0, total), d...)
				for _, f := range fs {
					l = append(l, flowGroups[f]...)
				}
				slices.Sort(l)
				l = slices.Compact(l)
			} else { // long: through a bitmap of the groups (the planner's Bits)
				if words.W == nil {
					words.W = make([]uint64, (ng+63)/64)
				} else {
					clear(words.W)
				}
				for _, x := range d {
					words.Set(x)
				}
				for _, f := range fs {
					for _, x := range flowGroups[f] {
						words.Set(x)
					}
				}
				c := 0
				for _, w := range words.W {
					c += bits.OnesCount64(w)
				}
				l = make([]uint32, 0, c)
				words.Each(ng, func(g int) { l = append(l, uint32(g)) })
			}
		}
		out[t] = l
		n += len(l)
	}
	return out[:na], out[na:], n
}

// Next is the seq the builder expects next.
func (b *Builder) Next() uint64 { return b.seg.Last + 1 }

// First is the seq the segment starts at.
func (b *Builder) First() uint64 { return b.seg.First }

// Count is the number of seqs covered so far (indexed or gaps).
func (b *Builder) Count() uint64 { return b.seg.Last + 1 - b.seg.First }

// Gap records seqs lo..hi as never seen; the next packet has seq hi+1.
func (b *Builder) Gap(lo, hi uint64) {
	if hi < lo {
		return
	}
	b.seg.Gaps = append(b.seg.Gaps, [2]uint64{lo, hi})
	b.grow(hi)
}

func (b *Builder) grow(seq uint64) {
	b.seg.Last = seq
	for g := uint64(b.seg.GroupOf(seq)); uint64(len(b.gmin)) <= g; {
		b.gmin = append(b.gmin, math.MaxInt64)
		b.gmax = append(b.gmax, math.MinInt64)
		b.gpk = append(b.gpk, 0)
		b.gby = append(b.gby, 0)
	}
}

func addGroup(l *[]uint32, g uint32) {
	if n := len(*l); n == 0 || (*l)[n-1] != g {
		*l = append(*l, g)
	}
}

// addrIndex is the index of address a; end (0 or 1) picks the cache.
func (b *Builder) addrIndex(end int, a *[16]byte) int32 {
	c := &b.last[end]
	if c.i < 0 || c.key != *a {
		i, ok := b.addrIdx[*a]
		if !ok {
			i = int32(len(b.addrKeys))
			b.addrIdx[*a] = i
			b.addrKeys = append(b.addrKeys, *a)
			b.addrLast = append(b.addrLast, 0)
		}
		c.key, c.i = *a, i
	}
	return c.i
}

// addr adds group g to address i's list.
func (b *Builder) addr(i int32, g uint32) { seen(&b.addrLast[i], &b.addrSeen, i, g) }

// portIndex is the index of port v.
func (b *Builder) portIndex(v uint16) int32 {
	pg := b.portIdx[v>>8]
	if pg == nil {
		pg = new([256]int32)
		b.portIdx[v>>8] = pg
	}
	i := pg[v&0xff] - 1
	if i < 0 {
		i = int32(len(b.portKeys))
		pg[v&0xff] = i + 1
		b.portKeys = append(b.portKeys, v)
		b.portLast = append(b.portLast, 0)
	}
	return i
}

// port adds group g to port i's list.
func (b *Builder) port(i int32, g uint32) { seen(&b.portLast[i], &b.portSeen, i, g) }

// Add indexes the packet with seq (which must be Next()) captured at ts.
func (b *Builder) Add(seq uint64, ts int64, p *Packet) {
	b.grow(seq)
	g := b.seg.GroupOf(seq)
	b.gmin[g] = min(b.gmin[g], ts)
	b.gmax[g] = max(b.gmax[g], ts)
	b.gpk[g]++
	b.gby[g] += uint64(p.Wire)
	b.seg.MinTS = min(b.seg.MinTS, ts)
	b.seg.MaxTS = max(b.seg.MaxTS, ts)
	b.seg.Indexed++
	addGroup(&b.kinds[p.Kind&3], g)
	oi := int32(0) // the origin's index + 1 for the flow origins, 0: not known
	if p.Origin.Known {
		b.origin(&p.Origin, g)
		oi = b.lastOrig + 1
	}
	if p.Cut {
		addGroup(&b.cut, g)
	}
	if p.Kind == Other {
		return
	}
	if p.Kind != ARP {
		addGroup(&b.protos[p.Proto], g)
		if p.Kind == IPv6 && p.First6 != p.Proto {
			addGroup(&b.protos[p.First6], g) // libpcap's "ip6 proto" reads the first header
		}
		if p.Addrs {
			b.flow(g, ts, p, oi) // its addresses and ports too
			return
		}
	}
	if p.SrcOK {
		b.addr(b.addrIndex(0, &p.Src), g)
	}
	if p.DstOK {
		b.addr(b.addrIndex(1, &p.Dst), g)
	}
	if p.Ports && p.Kind != ARP {
		b.port(b.portIndex(p.SPort), g)
		b.port(b.portIndex(p.DPort), g)
	}
}

// Encode is the segment file's bytes.
func (b *Builder) Encode() []byte {
	out, groupsEnd := b.appendHeader()
	postOff := len(out)
	// Room for the postings and flows at about two bytes a group, so that
	// appending them does not copy a growing buffer again and again.
	flowGroups, flowCnts := listsCounted(&b.flowSeen, &b.flowCnt, len(b.flows))
	addrs, ports, est := b.termLists(flowGroups)
	for _, blk := range b.flowSeen.blocks { // the flows' groups too
		est += len(blk)
	}
	out = slices.Grow(out, 2*est+64*len(b.flows)+32*(len(b.addrKeys)+len(b.portKeys)))
	out, dir, nterms := b.appendPostings(out, addrs, ports, b.originTerms())
	le := binary.LittleEndian
	le.PutUint32(out[52:], uint32(nterms))
	dirOff := len(out)
	out = append(out, dir...)
	sumsOff := len(out)
	for i := 0; i < len(dir); i += dirBlock * dirEntry {
		out = le.AppendUint32(out, sum32(dir[i:min(i+dirBlock*dirEntry, len(dir))]))
	}
	countsOff := len(out)
	fl := b.sortedFlows(flowGroups, flowCnts)
	out = b.appendCounts(out, fl)
	flowsOff := len(out)
	out = b.appendFlows(out, fl)
	forigOff := len(out)
	out = b.appendFlowOrigins(out, fl)
	foot := len(out)
	out = le.AppendUint64(out, uint64(postOff))
	out = le.AppendUint64(out, uint64(dirOff))
	out = le.AppendUint64(out, uint64(flowsOff))
	out = le.AppendUint32(out, sum32(out[:hdrSize]))
	out = le.AppendUint32(out, sum32(out[groupsEnd:postOff]))
	out = le.AppendUint32(out, sum32(out[hdrSize:groupsEnd]))
	out = le.AppendUint32(out, sum32(out[sumsOff:countsOff]))
	out = le.AppendUint32(out, sum32(out[flowsOff:forigOff]))
	out = le.AppendUint32(out, sum32(out[countsOff+groupCountsLen(out[countsOff:flowsOff], len(b.gmin)):flowsOff]))
	out = le.AppendUint64(out, uint64(forigOff))
	out = le.AppendUint32(out, sum32(out[forigOff:foot]))
	out = le.AppendUint32(out, 0)
	out = le.AppendUint32(out, sum32(out[foot:]))
	return append(out, trailMagic...)
}

func sum32(p []byte) uint32 { return crc32.Checksum(p, crcTable) }

// appendHeader starts a segment: the header (its term count left for
// Encode), the group times and the gaps; groupsEnd is where the gaps start.
func (b *Builder) appendHeader() (out []byte, groupsEnd int) {
	s := &b.seg
	le := binary.LittleEndian
	out = make([]byte, hdrSize, hdrSize+16*len(b.gmin)+32*len(b.addrKeys))
	copy(out, magic)
	le.PutUint16(out[4:], version)
	le.PutUint32(out[8:], s.GroupSize)
	le.PutUint32(out[12:], uint32(len(b.gmin)))
	le.PutUint64(out[16:], s.First)
	le.PutUint64(out[24:], s.Last)
	le.PutUint64(out[32:], uint64(s.MinTS))
	le.PutUint64(out[40:], uint64(s.MaxTS))
	le.PutUint32(out[48:], uint32(len(s.Gaps)))
	le.PutUint64(out[56:], s.Indexed)
	for i := range b.gmin {
		out = le.AppendUint64(out, uint64(b.gmin[i]))
		out = le.AppendUint64(out, uint64(b.gmax[i]))
	}
	groupsEnd = len(out)
	for _, g := range s.Gaps {
		out = le.AppendUint64(out, g[0])
		out = le.AppendUint64(out, g[1])
	}
	return out, groupsEnd
}

// appendPostings appends every term's group list (and its CRC) to out, the
// postings starting at out's current length, in directory order: kind
// ('A' < 'K' < 'P' < 'T' < the origin kinds 'd' < 'e' < 'i' < 'r' < 'v'),
// then key. It returns the directory that points
// at them, and how many terms it holds (a term with no group has none).
// The origin terms (orig, in order) come last.
func (b *Builder) appendPostings(out []byte, addrs, ports [][]uint32, orig []originTerm) (_ []byte, dir []byte, nterms int) {
	le := binary.LittleEndian
	postOff := len(out)
	term := func(kind byte, key []byte, l []uint32) {
		if len(l) == 0 {
			return
		}
		nterms++
		var e [dirEntry]byte
		e[0], e[1] = kind, byte(len(key))
		copy(e[4:20], key)
		le.PutUint32(e[20:], uint32(len(out)-postOff))
		dir = append(dir, e[:]...)
		start := len(out)
		out = appendGroups(out, l, uint32(len(b.gmin)))
		out = le.AppendUint32(out, sum32(out[start:]))
	}
	order := make([]int32, len(addrs))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(i, j int) bool {
		return bytes.Compare(b.addrKeys[order[i]][:], b.addrKeys[order[j]][:]) < 0
	})
	for _, i := range order {
		term(KindAddr, b.addrKeys[i][:], addrs[i])
	}
	for k, l := range b.kinds {
		term(KindKind, []byte{byte(k)}, l)
	}
	term(KindKind, []byte{KeyCut}, b.cut)
	order = order[:0]
	for i := range ports {
		order = append(order, int32(i))
	}
	sort.Slice(order, func(i, j int) bool { return b.portKeys[order[i]] < b.portKeys[order[j]] })
	for _, i := range order {
		v := b.portKeys[i]
		term(KindPort, []byte{byte(v >> 8), byte(v)}, ports[i])
	}
	for v, l := range b.protos {
		term(KindProto, []byte{byte(v)}, l)
	}
	for _, o := range orig {
		key, _ := OriginKey(o.kind, o.key) // the values of packets: they fit
		term(o.kind, key, o.groups)
	}
	return out, dir, nterms
}

// Decode checks a segment's trailer, footer, header, gaps and the sections'
// bounds and returns it; the other parts are checked when used (see Err).
// b must stay unchanged while the segment is used.
func Decode(b []byte) (*Segment, error) {
	bad := func(what string) (*Segment, error) { return nil, fmt.Errorf("%w: %s", ErrCorrupt, what) }
	le := binary.LittleEndian
	if len(b) < hdrSize+footerSize7+8 || string(b[:4]) != magic {
		return bad("not a segment (magic)")
	}
	v := le.Uint16(b[4:])
	if v < minVersion || v > version {
		return bad(fmt.Sprintf("version %d, this fmcap reads %d to %d (indexer --rebuild --store STORE rebuilds the index)", v, minVersion, version))
	}
	fsize := footerSize7
	if v >= 8 {
		fsize = footerSize
	}
	if len(b) < hdrSize+fsize+8 {
		return bad("not a segment (truncated)")
	}
	foot := b[len(b)-8-fsize : len(b)-8]
	if string(b[len(b)-4:]) != trailMagic || le.Uint32(b[len(b)-8:]) != crc32.Checksum(foot, crcTable) {
		return bad("checksum of the footer (truncated or damaged)")
	}
	if le.Uint32(foot[24:]) != crc32.Checksum(b[:hdrSize], crcTable) {
		return bad("checksum of the header")
	}
	s := &Segment{
		GroupSize: le.Uint32(b[8:]), First: le.Uint64(b[16:]), Last: le.Uint64(b[24:]),
		MinTS: int64(le.Uint64(b[32:])), MaxTS: int64(le.Uint64(b[40:])), Indexed: le.Uint64(b[56:]),
		groupsSum: le.Uint32(foot[32:]), flowSum: le.Uint32(foot[40:]), version: v,
	}
	ng, ngaps, nterms := uint64(le.Uint32(b[12:])), uint64(le.Uint32(b[48:])), uint64(le.Uint32(b[52:]))
	if s.GroupSize == 0 || s.Last+1 < s.First || groupCount(s.First, s.Last, s.GroupSize) != ng || ng > uint64(len(b)) {
		return bad("geometry")
	}
	s.ng = uint32(ng)
	postOff, dirOff, flowsOff := le.Uint64(foot), le.Uint64(foot[8:]), le.Uint64(foot[16:])
	end := uint64(len(b) - 8 - fsize)
	flowsEnd := end // version 8: where the flow origins start
	if v >= 8 {
		flowsEnd = le.Uint64(foot[48:])
	}
	nblocks := (nterms + dirBlock - 1) / dirBlock
	sumsOff := dirOff + nterms*dirEntry
	if postOff != hdrSize+ng*16+ngaps*16 || postOff > dirOff || dirOff > end || nterms > end ||
		sumsOff+nblocks*4 > flowsOff || flowsOff > flowsEnd || flowsEnd > end || v == 5 && sumsOff+nblocks*4 != flowsOff {
		return bad("section offsets")
	}
	gaps := b[hdrSize+ng*16 : postOff]
	if le.Uint32(foot[28:]) != crc32.Checksum(gaps, crcTable) {
		return bad("checksum of the gaps")
	}
	for p := gaps; len(p) > 0; p = p[16:] {
		lo, hi := le.Uint64(p), le.Uint64(p[8:])
		if hi < lo || lo < s.First || hi > s.Last {
			return bad("gap outside the segment")
		}
		s.Gaps = append(s.Gaps, [2]uint64{lo, hi})
	}
	countsOff := sumsOff + nblocks*4
	s.dirSums = b[sumsOff:countsOff]
	if v >= 6 {
		s.counts, s.countSum = b[countsOff:flowsOff], le.Uint32(foot[44:])
	}
	if le.Uint32(foot[36:]) != crc32.Checksum(s.dirSums, crcTable) {
		return bad("checksum of the term directory's block checksums")
	}
	s.groups = b[hdrSize : hdrSize+ng*16]
	s.post, s.dir, s.flows = b[postOff:dirOff], b[dirOff:sumsOff], b[flowsOff:flowsEnd]
	if v >= 8 {
		s.forig, s.forigSum = b[flowsEnd:end], le.Uint32(foot[56:])
	}
	s.dirOK = make([]bool, nblocks)
	return s, nil
}

// Verify checks every part of the segment, used or not.
func (s *Segment) Verify() error {
	if s.ng > 0 {
		s.GroupTimes(0)
	}
	n := len(s.dir) / dirEntry
	for i := 0; i < n && s.err == nil; i++ {
		s.list(i)
	}
	if s.err == nil {
		fl, err := s.FlowTable()
		if err != nil && s.err == nil {
			s.err = err // flows that pass their CRC but do not decode
		}
		if err == nil && s.HasCounts() {
			if err := s.GroupCounts(func(int, uint64, uint64) {}); err == nil {
				s.FlowCounts(fl, func(int, uint32, uint64, uint64) {})
			}
		}
		if err == nil && s.err == nil && s.HasFlowOrigins() {
			s.FlowOrigins(fl)
		}
	}
	return s.err
}

const (
	dirEntry    = 24
	footerSize  = 64 // version 8
	footerSize7 = 48 // versions 5 to 7: no flow origins' offset and CRC
)

func compareEntry(a, b []byte) int {
	if a[0] != b[0] {
		return int(a[0]) - int(b[0])
	}
	return bytes.Compare(a[4:20], b[4:20])
}

// entry is directory entry i, its block checked first; nil if it failed.
func (s *Segment) entry(i int) []byte {
	blk := i / dirBlock
	if !s.dirOK[blk] {
		lo, hi := blk*dirBlock*dirEntry, min((blk+1)*dirBlock*dirEntry, len(s.dir))
		b := s.dir[lo:hi]
		if binary.LittleEndian.Uint32(s.dirSums[blk*4:]) != crc32.Checksum(b, crcTable) {
			s.fail("term directory")
			return nil
		}
		for j := 0; j < len(b); j += dirEntry { // a writer bug, not damage: still refused
			e := b[j : j+dirEntry]
			if e[1] > 16 || uint64(binary.LittleEndian.Uint32(e[20:])) >= uint64(len(s.post)) ||
				(j > 0 && compareEntry(b[j-dirEntry:j], e) >= 0) {
				s.fail("term directory entries")
				return nil
			}
		}
		s.dirOK[blk] = true
	}
	return s.dir[i*dirEntry : (i+1)*dirEntry]
}

// find is the directory index of a term, or -1 when the segment has none
// (or a block it read failed its check: see Err).
func (s *Segment) find(kind byte, key []byte) int {
	var want [dirEntry]byte
	want[0] = kind
	copy(want[4:20], key)
	n := len(s.dir) / dirEntry
	i := sort.Search(n, func(i int) bool {
		e := s.entry(i)
		return e == nil || compareEntry(e, want[:]) >= 0
	})
	if s.err != nil || i == n || compareEntry(s.entry(i), want[:]) != 0 {
		return -1
	}
	return i
}

// Postings returns the groups of one term; ok is false when the segment
// has no such term. If a part read fails its check, it returns nothing and
// Err says so: the caller must then not trust the segment.
func (s *Segment) Postings(kind byte, key []byte) (groups []uint32, ok bool) {
	i := s.find(kind, key)
	if i < 0 {
		return nil, false
	}
	l := s.list(i)
	return l, s.err == nil
}

// PostingsInto sets in out the groups of one term (nothing if the segment
// has none), decoding straight into the bits. Damage: see Err.
func (s *Segment) PostingsInto(kind byte, key []byte, out Bits) {
	if i := s.find(kind, key); i >= 0 {
		s.decodeList(i, func(g uint32) { out.Set(g) })
	}
}

// list decodes and checks the postings of directory entry i.
func (s *Segment) list(i int) []uint32 {
	var l []uint32
	if !s.decodeList(i, func(g uint32) { l = append(l, g) }) {
		return nil
	}
	return l
}

// decodeList hands fn the groups of directory entry i, in order, then
// checks the list's CRC: false (and Err set) if it fails, in which case fn
// has seen groups that must not be trusted.
func (s *Segment) decodeList(i int, fn func(g uint32)) bool {
	e := s.entry(i)
	if e == nil {
		return false
	}
	p := s.post[binary.LittleEndian.Uint32(e[20:]):]
	at := decodeGroups(p, s.ng, fn)
	if at < 0 || len(p) < at+4 || binary.LittleEndian.Uint32(p[at:]) != crc32.Checksum(p[:at], crcTable) {
		s.fail("posting list")
		return false
	}
	return true
}

// Terms calls fn for every term of a kind, in key order. On damage it
// stops, and Err says so.
func (s *Segment) Terms(kind byte, fn func(key []byte, groups func() []uint32)) {
	n := len(s.dir) / dirEntry
	i := sort.Search(n, func(i int) bool {
		e := s.entry(i)
		return e == nil || e[0] >= kind
	})
	for ; i < n && s.err == nil; i++ {
		e := s.entry(i)
		if e == nil || e[0] != kind {
			return
		}
		j := i
		fn(e[4:4+int(e[1])], func() []uint32 { return s.list(j) })
	}
}

// FlowTable checks and decodes the segment's flows.
func (s *Segment) FlowTable() ([]Flow, error) {
	if s.err != nil {
		return nil, s.err
	}
	if crc32.Checksum(s.flows, crcTable) != s.flowSum {
		s.fail("flows")
		return nil, s.err
	}
	fl, rest, err := decodeFlows(s.flows, uint64(s.ng), s.MinTS)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%w: bytes after the flows", ErrCorrupt)
	}
	return fl, err
}

// FileName is the name of the segment for seqs first..last.
func FileName(first, last uint64) string { return fmt.Sprintf("seg-%020d-%020d.fmix", first, last) }

// ParseName reads a segment file name.
func ParseName(name string) (first, last uint64, ok bool) {
	if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".fmix") {
		return 0, 0, false
	}
	p := strings.Split(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".fmix"), "-")
	if len(p) != 2 {
		return 0, 0, false
	}
	f, e1 := strconv.ParseUint(p[0], 10, 64)
	l, e2 := strconv.ParseUint(p[1], 10, 64)
	return f, l, e1 == nil && e2 == nil && l >= f
}

// Write publishes the segment in dir (internal/atomicfile: an exclusive,
// unpredictably named temporary ".seg-….tmp-…", fsync, rename, fsync of the
// directory, every error reported; a killed indexer's temporaries are
// removed at its next start). It returns the file name.
func (b *Builder) Write(dir string) (string, error) {
	name := FileName(b.seg.First, b.seg.Last)
	if err := atomicfile.Write(filepath.Join(dir, name), b.Encode(), atomicfile.Options{Mode: fsmode.File}); err != nil {
		return "", fmt.Errorf("write segment %s: %w", name, err)
	}
	return name, nil
}

// Entry is a segment file of a directory, by name.
type Entry struct {
	Name        string
	First, Last uint64
}

// List returns the segments of dir in seq order.
func List(dir string) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range ents {
		if f, l, ok := ParseName(e.Name()); ok {
			out = append(out, Entry{e.Name(), f, l})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First < out[j].First })
	return out, nil
}

// Open maps one segment file and checks what Decode checks; Close
// releases it. A segment is immutable and replaced by rename, so the
// mapping stays valid while retention or a rebuild removes the file.
func Open(dir string, e Entry) (*Segment, error) {
	f, err := os.Open(filepath.Join(dir, e.Name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < hdrSize+footerSize7+8 {
		return nil, fmt.Errorf("%s: %w: not a segment (%d bytes: truncated?)", e.Name, ErrCorrupt, st.Size())
	}
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", e.Name, err)
	}
	s, err := Decode(m)
	if err != nil {
		m.Unmap()
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	if s.First != e.First || s.Last != e.Last {
		m.Unmap()
		return nil, fmt.Errorf("%s: %w: its name and contents disagree", e.Name, ErrCorrupt)
	}
	s.Name, s.m = e.Name, m
	return s, nil
}
