package chunk

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/fmcap/fmcap/internal/origin"
)

// Per-packet metadata (FORMAT, "Metadata frame"): where each packet of a
// frame came from, which pcap cannot say.

const (
	skipMeta     = 0x184D2A5C
	metaMagic    = "FMPM"
	metaVersion  = 1
	metaHdrSize  = 16
	metaRunSize  = 12
	metaMaxRun   = 1<<16 - 1
	metaMaxOrigs = 1<<16 - 1
)

// PacketMeta is what a chunk keeps of a packet beyond its pcap record.
type PacketMeta struct {
	Port   uint16
	Dir    uint8 // shmring.Dir: 0 unknown, 1 ingress, 2 egress, 3 inline
	Rule   uint32
	Origin origin.Origin
}

type metaRun struct {
	n    uint32 // packets
	port uint16
	dir  uint8
	orig uint16 // 0 none, i: origins[i-1]
	rule uint32
}

// MetaBuilder gathers a frame's metadata as packets are added, and encodes
// it as the skippable frame that precedes the frame's zstd frame. Its
// storage is reused across Reset: adding a packet does not allocate once
// the frame's runs and origins have been seen.
type MetaBuilder struct {
	runs    []metaRun
	origins []origin.Origin
	last    int // index+1 in origins of the last origin added (a cache)
	count   uint32
}

// Reset empties the builder for the next frame.
func (m *MetaBuilder) Reset() {
	m.runs, m.origins, m.last, m.count = m.runs[:0], m.origins[:0], 0, 0
}

// Count is the packets added since Reset.
func (m *MetaBuilder) Count() uint32 { return m.count }

// Add records the next packet's metadata. kind and blob are the ring's
// (shmring.Record); a blob origin.Parse refuses is kept as no origin.
func (m *MetaBuilder) Add(port uint16, dir uint8, rule uint32, kind origin.Kind, blob []byte) {
	oi := uint16(0)
	if kind != origin.None {
		oi = m.originIndex(kind, blob)
	}
	m.count++
	if n := len(m.runs); n > 0 {
		r := &m.runs[n-1]
		if r.port == port && r.dir == dir && r.rule == rule && r.orig == oi && r.n < metaMaxRun {
			r.n++
			return
		}
	}
	m.runs = append(m.runs, metaRun{n: 1, port: port, dir: dir, orig: oi, rule: rule})
}

func (m *MetaBuilder) originIndex(kind origin.Kind, blob []byte) uint16 {
	eq := func(o *origin.Origin) bool { return o.Kind == kind && string(o.B[:o.N]) == string(blob) }
	if m.last > 0 && eq(&m.origins[m.last-1]) {
		return uint16(m.last)
	}
	for i := range m.origins {
		if eq(&m.origins[i]) {
			m.last = i + 1
			return uint16(i + 1)
		}
	}
	o, err := origin.Parse(kind, blob)
	if err != nil || len(m.origins) == metaMaxOrigs {
		return 0
	}
	m.origins = append(m.origins, o)
	m.last = len(m.origins)
	return uint16(m.last)
}

// AppendFrame appends the skippable frame holding the metadata to b.
func (m *MetaBuilder) AppendFrame(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, skipMeta)
	lenAt := len(b)
	b = le.AppendUint32(b, 0)
	start := len(b)
	b = append(b, metaMagic...)
	b = le.AppendUint16(b, metaVersion)
	b = le.AppendUint16(b, uint16(len(m.origins)))
	b = le.AppendUint32(b, uint32(len(m.runs)))
	b = le.AppendUint32(b, m.count)
	for i := range m.origins {
		o := &m.origins[i]
		b = append(b, byte(o.Kind), o.N)
		b = append(b, o.B[:o.N]...)
	}
	for _, r := range m.runs {
		b = le.AppendUint16(b, uint16(r.n))
		b = le.AppendUint16(b, r.port)
		b = append(b, r.dir, 0)
		b = le.AppendUint16(b, r.orig)
		b = le.AppendUint32(b, r.rule)
	}
	b = le.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
	le.PutUint32(b[lenAt:], uint32(len(b)-start))
	return b
}

// Meta is a decoded metadata frame. Parse reuses its storage.
type Meta struct {
	origins []origin.Origin
	runs    []metaRun
	count   uint32
}

// Count is the number of packets the metadata describes: a frame's
// packet count.
func (m *Meta) Count() uint32 { return m.count }

// Parse decodes a metadata frame's payload (the bytes after the skippable
// frame's 8-byte header). Anything inconsistent is ErrCorrupt.
func (m *Meta) Parse(b []byte) error {
	le := binary.LittleEndian
	m.origins, m.runs, m.count = m.origins[:0], m.runs[:0], 0
	if len(b) < metaHdrSize+4 || string(b[:4]) != metaMagic {
		return fmt.Errorf("%w: metadata frame: bad magic or %d bytes", ErrCorrupt, len(b))
	}
	if le.Uint32(b[len(b)-4:]) != crc32.Checksum(b[:len(b)-4], crcTable) {
		return fmt.Errorf("%w: metadata frame checksum", ErrCorrupt)
	}
	if v := le.Uint16(b[4:]); v != metaVersion {
		return fmt.Errorf("%w: metadata frame version %d (this build reads %d)", ErrCorrupt, v, metaVersion)
	}
	no, nr, count := int(le.Uint16(b[6:])), le.Uint32(b[8:]), le.Uint32(b[12:])
	rest := b[metaHdrSize : len(b)-4]
	for i := 0; i < no; i++ {
		if len(rest) < 2 || len(rest) < 2+int(rest[1]) {
			return fmt.Errorf("%w: metadata frame: origin %d cut short", ErrCorrupt, i)
		}
		o, err := origin.Parse(origin.Kind(rest[0]), rest[2:2+int(rest[1])])
		if err != nil {
			return fmt.Errorf("%w: metadata frame: origin %d: %v", ErrCorrupt, i, err)
		}
		m.origins = append(m.origins, o)
		rest = rest[2+int(rest[1]):]
	}
	if uint64(len(rest)) != uint64(nr)*metaRunSize {
		return fmt.Errorf("%w: metadata frame: %d bytes for %d runs", ErrCorrupt, len(rest), nr)
	}
	var sum uint64
	for ; len(rest) > 0; rest = rest[metaRunSize:] {
		r := metaRun{n: uint32(le.Uint16(rest)), port: le.Uint16(rest[2:]), dir: rest[4], orig: le.Uint16(rest[6:]), rule: le.Uint32(rest[8:])}
		if r.n == 0 || int(r.orig) > len(m.origins) {
			return fmt.Errorf("%w: metadata frame: run %d of %d packets, origin %d of %d", ErrCorrupt, len(m.runs), r.n, r.orig, len(m.origins))
		}
		sum += uint64(r.n)
		m.runs = append(m.runs, r)
	}
	if sum != uint64(count) {
		return fmt.Errorf("%w: metadata frame: runs hold %d packets, header says %d", ErrCorrupt, sum, count)
	}
	m.count = count
	return nil
}

// MetaIter walks a Meta's packets in order.
type MetaIter struct {
	m   *Meta
	run int
	in  uint32
}

// Iter starts a walk at the frame's first packet.
func (m *Meta) Iter() MetaIter { return MetaIter{m: m} }

// Next fills p with the next packet's metadata; false after the last.
func (it *MetaIter) Next(p *PacketMeta) bool {
	if it.m == nil {
		return false
	}
	for it.run < len(it.m.runs) && it.in == it.m.runs[it.run].n {
		it.run, it.in = it.run+1, 0
	}
	if it.run == len(it.m.runs) {
		return false
	}
	r := &it.m.runs[it.run]
	it.in++
	p.Port, p.Dir, p.Rule = r.port, r.dir, r.rule
	if r.orig == 0 {
		p.Origin = origin.Origin{}
	} else {
		p.Origin = it.m.origins[r.orig-1]
	}
	return true
}

// splitMeta separates a compressed frame's bytes into its metadata frame's
// payload (nil when it has none) and the zstd frame. metaSize is the frame
// table's (0: unknown or none, the bytes decide).
func splitMeta(b []byte, metaSize uint32) (meta, zst []byte, err error) {
	le := binary.LittleEndian
	if len(b) < 8 || le.Uint32(b) != skipMeta {
		if metaSize != 0 {
			return nil, nil, fmt.Errorf("%w: frame table says %d bytes of metadata, the frame has none", ErrCorrupt, metaSize)
		}
		return nil, b, nil
	}
	n := uint64(le.Uint32(b[4:]))
	if 8+n > uint64(len(b)) || metaSize != 0 && 8+n != uint64(metaSize) {
		return nil, nil, fmt.Errorf("%w: metadata frame of %d bytes in a frame of %d (table: %d)", ErrCorrupt, n, len(b), metaSize)
	}
	return b[8 : 8+n], b[8+n:], nil
}
