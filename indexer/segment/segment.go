// Package segment owns the index format: immutable segment files the
// indexer writes, and fmslice reads to choose which frames a query must
// decompress. Sequence numbers are the join key: a segment says in which
// groups of GroupSize consecutive seqs an address, a port or a protocol
// appears, and the writer's frame tables (writer/chunk) turn groups into
// frames.
//
// # Directory
//
//	seg-F-L.fmix    the segment for seqs F..L (20 digits each), immutable
//	.seg-*.tmp      a segment being written (ignored, removed at start)
//
// # Segment file (little-endian)
//
//	header, 64 bytes
//	  0  4  magic "FMIX"
//	  4  2  version (1)
//	  6  2  reserved, zero
//	  8  4  group size G (seqs per group)
//	 12  4  group count N
//	 16  8  first seq F (group g holds seqs F+g*G .. F+(g+1)*G-1, up to L)
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
//	postings: per term, in directory order, the group count uvarint then
//	  the groups ascending as uvarint deltas
//	term directory, sorted by kind then key, term count × 24 bytes:
//	  kind u8 ('A' address, 'K' packet kind, 'P' port, 'T' IP protocol)
//	  key length u8, reserved u16, key [16] zero-padded (address: 16
//	    bytes, IPv4 mapped; port: 2 bytes big-endian; protocol and kind:
//	    1 byte), offset of the term's postings from the postings' start u32
//	  (fixed-size entries: a query binary-searches the few terms it needs
//	  and never decodes the rest)
//	flows: count uvarint, then per flow (see flows.go for the key's order)
//	  kind u8, proto u8, VLAN u16, address A [16], address B [16],
//	  port A u16, port B u16, TCP flags seen u8 (OR of all packets),
//	  packets uvarint, bytes uvarint (on the wire), first i64, last i64,
//	  group count uvarint and the groups as uvarint deltas
//	footer: offsets of the postings, the term directory and the flows,
//	  u64 each
//	trailer: CRC-32C (Castagnoli) of every byte before it, u32; "XIMF"
//
// A segment that fails any check (magic, version, lengths, CRC) is refused
// as a whole with ErrCorrupt; a reader then treats its seqs as unindexed.
package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	magic      = "FMIX"
	trailMagic = "XIMF"
	version    = 1
	hdrSize    = 64

	KindAddr  = 'A'
	KindPort  = 'P'
	KindProto = 'T'
	KindKind  = 'K'

	// KeyCut is the kind term of groups holding a frame cut inside a
	// header the index reads: every filter keeps them.
	KeyCut = 0x80

	// DefaultGroupSize is seqs per group: about the packets of a small
	// frame, so a selective query decompresses little more than it needs.
	DefaultGroupSize = 64
)

var (
	ErrCorrupt = errors.New("corrupt index segment")
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
)

// Segment is a decoded segment.
type Segment struct {
	GroupSize        uint32
	First, Last      uint64
	MinTS, MaxTS     int64
	Indexed          uint64
	GroupMin         []int64
	GroupMax         []int64
	Gaps             [][2]uint64
	post, dir, flows []byte // postings, term directory, flows: decoded on demand
	Name             string
}

// Groups is the number of groups.
func (s *Segment) Groups() int { return len(s.GroupMin) }

// GroupSeqs is the seq range of group g.
func (s *Segment) GroupSeqs(g uint32) (lo, hi uint64) {
	lo = s.First + uint64(g)*uint64(s.GroupSize)
	hi = min(lo+uint64(s.GroupSize)-1, s.Last)
	return lo, hi
}

// Builder accumulates packets into a segment. Not safe for concurrent use.
// Postings are kept by kind in plain structures (ports and protocols in
// arrays indexed by value, addresses in a map of 16-byte keys with a
// one-entry cache per end): the indexer's per-packet cost is a few array
// and map hits, and an append when a term first shows in a group.
type Builder struct {
	seg      Segment
	addrIdx  map[[16]byte]int32
	addrKeys [][16]byte
	addrs    [][]uint32
	ports    [256]*[256][]uint32 // by port: high byte, then low byte; pages allocated on first use
	portList []uint16            // the ports with a list, for Encode
	protos   [256][]uint32
	kinds    [4][]uint32
	cut      []uint32 // groups with a frame cut inside a header (Packet.Cut)
	flows    map[FlowKey]*Flow
	last     [2]struct {
		key [16]byte
		i   int32
	}
	lastFlow *Flow
}

// NewBuilder starts a segment at seq first.
func NewBuilder(first uint64, groupSize uint32) *Builder {
	b := &Builder{
		seg:     Segment{GroupSize: groupSize, First: first, Last: first - 1, MinTS: math.MaxInt64, MaxTS: math.MinInt64},
		addrIdx: map[[16]byte]int32{},
		flows:   map[FlowKey]*Flow{},
	}
	b.last[0].i, b.last[1].i = -1, -1
	return b
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
	for g := (seq - b.seg.First) / uint64(b.seg.GroupSize); uint64(len(b.seg.GroupMin)) <= g; {
		b.seg.GroupMin = append(b.seg.GroupMin, math.MaxInt64)
		b.seg.GroupMax = append(b.seg.GroupMax, math.MinInt64)
	}
}

func addGroup(l *[]uint32, g uint32) {
	if n := len(*l); n == 0 || (*l)[n-1] != g {
		*l = append(*l, g)
	}
}

// addr adds group g to an address's list; end (0 or 1) picks the cache.
func (b *Builder) addr(end int, a *[16]byte, g uint32) {
	c := &b.last[end]
	if c.i < 0 || c.key != *a {
		i, ok := b.addrIdx[*a]
		if !ok {
			i = int32(len(b.addrs))
			b.addrIdx[*a] = i
			b.addrKeys = append(b.addrKeys, *a)
			b.addrs = append(b.addrs, nil)
		}
		c.key, c.i = *a, i
	}
	addGroup(&b.addrs[c.i], g)
}

func (b *Builder) port(v uint16, g uint32) {
	pg := b.ports[v>>8]
	if pg == nil {
		pg = new([256][]uint32)
		b.ports[v>>8] = pg
	}
	l := &pg[v&0xff]
	if len(*l) == 0 {
		b.portList = append(b.portList, v)
	}
	addGroup(l, g)
}

// Add indexes the packet with seq (which must be Next()) captured at ts.
func (b *Builder) Add(seq uint64, ts int64, p *Packet) {
	b.grow(seq)
	g := uint32((seq - b.seg.First) / uint64(b.seg.GroupSize))
	b.seg.GroupMin[g] = min(b.seg.GroupMin[g], ts)
	b.seg.GroupMax[g] = max(b.seg.GroupMax[g], ts)
	b.seg.MinTS = min(b.seg.MinTS, ts)
	b.seg.MaxTS = max(b.seg.MaxTS, ts)
	b.seg.Indexed++
	addGroup(&b.kinds[p.Kind&3], g)
	if p.Cut {
		addGroup(&b.cut, g)
	}
	if p.Kind == Other {
		return
	}
	if p.SrcOK {
		b.addr(0, &p.Src, g)
	}
	if p.DstOK {
		b.addr(1, &p.Dst, g)
	}
	if p.Kind == ARP {
		return
	}
	addGroup(&b.protos[p.Proto], g)
	if p.Kind == IPv6 && p.First6 != p.Proto {
		addGroup(&b.protos[p.First6], g) // libpcap's "ip6 proto" reads the first header
	}
	if p.Addrs {
		b.flow(g, ts, p)
	}
	if p.Ports {
		b.port(p.SPort, g)
		b.port(p.DPort, g)
	}
}

// Encode is the segment file's bytes.
func (b *Builder) Encode() []byte {
	s := &b.seg
	le := binary.LittleEndian
	out := make([]byte, hdrSize, hdrSize+16*len(s.GroupMin)+32*len(b.addrs))
	copy(out, magic)
	le.PutUint16(out[4:], version)
	le.PutUint32(out[8:], s.GroupSize)
	le.PutUint32(out[12:], uint32(len(s.GroupMin)))
	le.PutUint64(out[16:], s.First)
	le.PutUint64(out[24:], s.Last)
	le.PutUint64(out[32:], uint64(s.MinTS))
	le.PutUint64(out[40:], uint64(s.MaxTS))
	le.PutUint32(out[48:], uint32(len(s.Gaps)))
	le.PutUint64(out[56:], s.Indexed)
	for i := range s.GroupMin {
		out = le.AppendUint64(out, uint64(s.GroupMin[i]))
		out = le.AppendUint64(out, uint64(s.GroupMax[i]))
	}
	for _, g := range s.Gaps {
		out = le.AppendUint64(out, g[0])
		out = le.AppendUint64(out, g[1])
	}
	postOff := len(out)
	var dir []byte
	nterms := 0
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
		out = binary.AppendUvarint(out, uint64(len(l)))
		prev := uint32(0)
		for _, g := range l {
			out = binary.AppendUvarint(out, uint64(g-prev))
			prev = g
		}
	}
	// Sorted by kind ('A' < 'K' < 'P' < 'T'), then key.
	order := make([]int32, len(b.addrs))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(i, j int) bool {
		return bytes.Compare(b.addrKeys[order[i]][:], b.addrKeys[order[j]][:]) < 0
	})
	for _, i := range order {
		term(KindAddr, b.addrKeys[i][:], b.addrs[i])
	}
	for k, l := range b.kinds {
		term(KindKind, []byte{byte(k)}, l)
	}
	term(KindKind, []byte{KeyCut}, b.cut)
	sort.Slice(b.portList, func(i, j int) bool { return b.portList[i] < b.portList[j] })
	for _, v := range b.portList {
		term(KindPort, []byte{byte(v >> 8), byte(v)}, b.ports[v>>8][v&0xff])
	}
	for v, l := range b.protos {
		term(KindProto, []byte{byte(v)}, l)
	}
	le.PutUint32(out[52:], uint32(nterms))
	dirOff := len(out)
	out = append(out, dir...)
	flowsOff := len(out)
	out = b.appendFlows(out)
	out = le.AppendUint64(out, uint64(postOff))
	out = le.AppendUint64(out, uint64(dirOff))
	out = le.AppendUint64(out, uint64(flowsOff))
	out = le.AppendUint32(out, crc32.Checksum(out, crcTable))
	return append(out, trailMagic...)
}

// Decode checks a segment file's bytes (checksum, geometry, gaps, the
// sections' bounds) and returns it; postings and flows are decoded when
// asked for, each bounds-checked.
func Decode(b []byte) (*Segment, error) {
	bad := func(what string) (*Segment, error) { return nil, fmt.Errorf("%w: %s", ErrCorrupt, what) }
	le := binary.LittleEndian
	if len(b) < hdrSize+8+footerSize || string(b[:4]) != magic {
		return bad("not a segment (magic)")
	}
	if v := le.Uint16(b[4:]); v != version {
		return bad(fmt.Sprintf("version %d, this fmcap reads %d", v, version))
	}
	body := b[:len(b)-8]
	if string(b[len(b)-4:]) != trailMagic || le.Uint32(b[len(b)-8:]) != crc32.Checksum(body, crcTable) {
		return bad("checksum (truncated or damaged)")
	}
	s := &Segment{
		GroupSize: le.Uint32(b[8:]), First: le.Uint64(b[16:]), Last: le.Uint64(b[24:]),
		MinTS: int64(le.Uint64(b[32:])), MaxTS: int64(le.Uint64(b[40:])), Indexed: le.Uint64(b[56:]),
	}
	ng, ngaps, nterms := uint64(le.Uint32(b[12:])), uint64(le.Uint32(b[48:])), uint64(le.Uint32(b[52:]))
	if s.GroupSize == 0 || s.Last+1 < s.First || (s.Last+1-s.First+uint64(s.GroupSize)-1)/uint64(s.GroupSize) != ng {
		return bad("geometry")
	}
	foot := body[len(body)-footerSize:]
	postOff, dirOff, flowsOff := le.Uint64(foot), le.Uint64(foot[8:]), le.Uint64(foot[16:])
	end := uint64(len(body) - footerSize)
	if postOff != hdrSize+ng*16+ngaps*16 || postOff > dirOff || dirOff+nterms*dirEntry != flowsOff || flowsOff > end {
		return bad("section offsets")
	}
	p := body[hdrSize:postOff]
	s.GroupMin, s.GroupMax = make([]int64, ng), make([]int64, ng)
	for i := range s.GroupMin {
		s.GroupMin[i], s.GroupMax[i] = int64(le.Uint64(p)), int64(le.Uint64(p[8:]))
		p = p[16:]
	}
	for i := uint64(0); i < ngaps; i++ {
		lo, hi := le.Uint64(p), le.Uint64(p[8:])
		if hi < lo || lo < s.First || hi > s.Last {
			return bad("gap outside the segment")
		}
		s.Gaps = append(s.Gaps, [2]uint64{lo, hi})
		p = p[16:]
	}
	s.post, s.dir, s.flows = body[postOff:dirOff], body[dirOff:flowsOff], body[flowsOff:end]
	for i := 0; i+dirEntry <= len(s.dir); i += dirEntry { // entries in order, offsets in bounds
		e := s.dir[i : i+dirEntry]
		if e[1] > 16 || uint64(le.Uint32(e[20:])) >= uint64(len(s.post)) {
			return bad("term directory")
		}
		if i > 0 && compareEntry(s.dir[i-dirEntry:i], e) >= 0 {
			return bad("term directory order")
		}
	}
	return s, nil
}

const (
	dirEntry   = 24
	footerSize = 24
)

func compareEntry(a, b []byte) int {
	if a[0] != b[0] {
		return int(a[0]) - int(b[0])
	}
	return bytes.Compare(a[4:20], b[4:20])
}

// Postings returns the groups of one term; ok is false when the segment
// has no such term. A list that does not decode comes back as every group
// (the caller wants a superset, and the checksum passed: a writer bug).
func (s *Segment) Postings(kind byte, key []byte) (groups []uint32, ok bool) {
	var want [dirEntry]byte
	want[0] = kind
	copy(want[4:20], key)
	n := len(s.dir) / dirEntry
	i := sort.Search(n, func(i int) bool { return compareEntry(s.dir[i*dirEntry:], want[:]) >= 0 })
	if i == n || compareEntry(s.dir[i*dirEntry:], want[:]) != 0 {
		return nil, false
	}
	return s.list(i), true
}

// list decodes the postings of directory entry i.
func (s *Segment) list(i int) []uint32 {
	ng := uint64(len(s.GroupMin))
	p := s.post[binary.LittleEndian.Uint32(s.dir[i*dirEntry+20:]):]
	n, k := binary.Uvarint(p)
	everything := func() []uint32 {
		l := make([]uint32, ng)
		for g := range l {
			l[g] = uint32(g)
		}
		return l
	}
	if k <= 0 || n > ng {
		return everything()
	}
	p = p[k:]
	l := make([]uint32, n)
	g := uint64(0)
	for j := range l {
		d, k := binary.Uvarint(p)
		if k <= 0 {
			return everything()
		}
		p = p[k:]
		g += d
		if g >= ng || (j > 0 && d == 0) {
			return everything()
		}
		l[j] = uint32(g)
	}
	return l
}

// Terms calls fn for every term of a kind, in key order.
func (s *Segment) Terms(kind byte, fn func(key []byte, groups func() []uint32)) {
	n := len(s.dir) / dirEntry
	i := sort.Search(n, func(i int) bool { return s.dir[i*dirEntry] >= kind })
	for ; i < n && s.dir[i*dirEntry] == kind; i++ {
		e := s.dir[i*dirEntry:]
		j := i
		fn(e[4:4+int(e[1])], func() []uint32 { return s.list(j) })
	}
}

// FlowTable decodes the segment's flows.
func (s *Segment) FlowTable() ([]Flow, error) {
	fl, rest, err := decodeFlows(s.flows, uint64(len(s.GroupMin)))
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

// Write publishes the segment in dir: temporary file, fsync, rename, fsync
// of the directory. It returns the file name.
func (b *Builder) Write(dir string) (string, error) {
	name := FileName(b.seg.First, b.seg.Last)
	tmp := filepath.Join(dir, ".seg-"+strconv.FormatUint(b.seg.First, 10)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(b.Encode())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write segment %s: %w", name, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
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

// Read loads and checks one segment file.
func Read(dir string, e Entry) (*Segment, error) {
	b, err := os.ReadFile(filepath.Join(dir, e.Name))
	if err != nil {
		return nil, err
	}
	s, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	if s.First != e.First || s.Last != e.Last {
		return nil, fmt.Errorf("%s: %w: its name and contents disagree", e.Name, ErrCorrupt)
	}
	s.Name = e.Name
	return s, nil
}
