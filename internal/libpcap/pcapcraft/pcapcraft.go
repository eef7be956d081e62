// Package pcapcraft writes small pcap and pcapng files byte by byte, with
// whatever a test needs in them (records longer than the snaplen, link types
// above 255, interfaces of different link types, times after 2106, a cut
// last record). It checks nothing on purpose: the point is to make files
// that libpcap, and fmcap, must judge. Everything is little-endian.
//
// The files in testdata/intake are made by it (see their README).
package pcapcraft

import (
	"encoding/binary"
)

// Pcap magic numbers (the first 4 bytes, little-endian).
const (
	MagicMicro = 0xa1b2c3d4
	MagicNano  = 0xa1b23c4d
)

// Link types (LINKTYPE_ values, as written in files).
const (
	LinkEthernet       = 1
	LinkLinuxSLL       = 113
	LinkProfibusDL     = 257
	LinkDSATagBRCM     = 281
	LinkDSATagBRCMPrep = 282
	LinkDSATagDSA      = 284
	LinkDSATagEDSA     = 285
)

// Rec is one pcap record. Caplen is what the record header says and Data
// what follows it; they differ only when a test wants them to (a record
// cut short by the end of the file).
type Rec struct {
	Sec, Frac uint32
	Caplen    uint32
	Len       uint32
	Data      []byte
}

// R is a record whose header agrees with its data.
func R(sec, frac uint32, data []byte, wireLen uint32) Rec {
	return Rec{Sec: sec, Frac: frac, Caplen: uint32(len(data)), Len: wireLen, Data: data}
}

// Pcap is a pcap file: the 24-byte global header (version 2.4), then each
// record's 16-byte header and data.
func Pcap(magic, snaplen, linkType uint32, recs ...Rec) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, magic)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, 0) // thiszone
	b = le.AppendUint32(b, 0) // sigfigs
	b = le.AppendUint32(b, snaplen)
	b = le.AppendUint32(b, linkType)
	for _, r := range recs {
		b = le.AppendUint32(b, r.Sec)
		b = le.AppendUint32(b, r.Frac)
		b = le.AppendUint32(b, r.Caplen)
		b = le.AppendUint32(b, r.Len)
		b = append(b, r.Data...)
	}
	return b
}

// Iface is a pcapng interface (an Interface Description Block).
// TSResol is the if_tsresol option's byte (0: none, microseconds).
type Iface struct {
	LinkType uint16
	Snaplen  uint32
	TSResol  byte
}

// Pkt is a pcapng Enhanced Packet Block; TS counts units of its
// interface's resolution. Caplen is written as given; the data is Data,
// padded to 4 bytes.
type Pkt struct {
	Iface  uint32
	TS     uint64
	Caplen uint32
	Len    uint32
	Data   []byte
}

// P is a packet whose captured length is its data's.
func P(iface uint32, ts uint64, data []byte, wireLen uint32) Pkt {
	return Pkt{Iface: iface, TS: ts, Caplen: uint32(len(data)), Len: wireLen, Data: data}
}

// Block type codes (pcapng).
const (
	btSHB = 0x0a0d0d0a
	btIDB = 0x00000001
	btEPB = 0x00000006
)

func block(b []byte, typ uint32, body []byte) []byte {
	le := binary.LittleEndian
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b = le.AppendUint32(b, typ)
	b = le.AppendUint32(b, n)
	b = append(b, body...)
	return le.AppendUint32(b, n)
}

// SHB is a Section Header Block (version 1.0, section length unknown).
func SHB() []byte {
	le := binary.LittleEndian
	body := le.AppendUint32(nil, 0x1a2b3c4d)
	body = le.AppendUint16(body, 1)
	body = le.AppendUint16(body, 0)
	body = le.AppendUint64(body, ^uint64(0))
	return block(nil, btSHB, body)
}

// IDB is an Interface Description Block.
func IDB(i Iface) []byte {
	le := binary.LittleEndian
	body := le.AppendUint16(nil, i.LinkType)
	body = le.AppendUint16(body, 0)
	body = le.AppendUint32(body, i.Snaplen)
	if i.TSResol != 0 {
		body = le.AppendUint16(body, 9) // if_tsresol
		body = le.AppendUint16(body, 1)
		body = append(body, i.TSResol, 0, 0, 0)
		body = le.AppendUint32(body, 0) // opt_endofopt
	}
	return block(nil, btIDB, body)
}

// EPB is an Enhanced Packet Block.
func EPB(p Pkt) []byte {
	le := binary.LittleEndian
	body := le.AppendUint32(nil, p.Iface)
	body = le.AppendUint32(body, uint32(p.TS>>32))
	body = le.AppendUint32(body, uint32(p.TS))
	body = le.AppendUint32(body, p.Caplen)
	body = le.AppendUint32(body, p.Len)
	body = append(body, p.Data...)
	return block(nil, btEPB, body)
}

// Pcapng is one section: its interfaces, then its packets.
func Pcapng(ifaces []Iface, pkts ...Pkt) []byte {
	b := SHB()
	for _, i := range ifaces {
		b = append(b, IDB(i)...)
	}
	for _, p := range pkts {
		b = append(b, EPB(p)...)
	}
	return b
}

// Frame is an n-byte Ethernet frame (n >= 14) between two locally
// administered addresses, EtherType 0x88b5 (local experimental), filled
// with a pattern that starts at seed, so that every packet of a test
// differs from the others.
func Frame(n int, seed byte) []byte {
	b := make([]byte, n)
	copy(b, []byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5})
	for i := 14; i < n; i++ {
		b[i] = seed + byte(i)
	}
	return b
}

// MagicModified is the magic of the "modified" pcap format (Alexey
// Kuznetzov's patched libpcap), whose record headers are 24 bytes: the
// usual 16, then an interface index (4), a protocol (2), a packet type
// (1) and a pad byte.
const MagicModified = 0xa1b2cd34

// PcapModified is a pcap file in the modified format.
func PcapModified(snaplen, linkType uint32, recs ...Rec) []byte {
	le := binary.LittleEndian
	b := Pcap(MagicModified, snaplen, linkType)
	for _, r := range recs {
		b = le.AppendUint32(b, r.Sec)
		b = le.AppendUint32(b, r.Frac)
		b = le.AppendUint32(b, r.Caplen)
		b = le.AppendUint32(b, r.Len)
		b = le.AppendUint32(b, 2)      // ifindex
		b = le.AppendUint16(b, 0x0800) // protocol
		b = append(b, 0, 0)            // packet type, pad
		b = append(b, r.Data...)
	}
	return b
}
