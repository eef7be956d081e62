package main

import (
	"bufio"
	"encoding/binary"
	"io"

	"github.com/fmcap/fmcap/store/chunk"
)

// pcapSink writes standard pcap with nanosecond timestamps: the same bytes
// the chunks hold, so packets and times come out exactly as captured.
type pcapSink struct {
	w   *bufio.Writer
	buf []byte
}

func newPcapSink(w io.Writer) (*pcapSink, error) {
	s := &pcapSink{w: bufio.NewWriterSize(w, 1<<20)}
	_, err := s.w.Write(chunk.PcapHeader())
	return s, err
}

func (s *pcapSink) write(ts int64, wireLen uint32, data []byte) error {
	s.buf, _ = chunk.AppendPacket(s.buf[:0], ts, wireLen, data)
	_, err := s.w.Write(s.buf)
	return err
}

func (s *pcapSink) flush() error { return s.w.Flush() }

// ngSink writes pcapng (draft-ietf-opsawg-pcapng), little-endian: one
// Section Header Block, one Interface Description Block (Ethernet, snaplen
// 262144, if_tsresol 9: nanoseconds), then an Enhanced Packet Block per
// packet. Block layouts, all lengths in bytes and blocks padded to 4:
//
//	SHB: type 0x0A0D0D0A, total length, byte-order magic 0x1A2B3C4D,
//	     version 1.0 (u16 u16), section length -1 (i64), options
//	     (shb_userappl = "fmslice", end), total length
//	IDB: type 1, total length, link type 1 (u16), reserved (u16),
//	     snaplen (u32), options (if_name = "fmcap", if_tsresol = 9, end),
//	     total length
//	EPB: type 6, total length, interface 0, timestamp high and low u32
//	     (ns since 1970), captured length, original length, data padded,
//	     total length
//
// Written here rather than with gopacket/pcapgo: see bpf.go.
type ngSink struct {
	w   *bufio.Writer
	buf []byte
}

func newNgSink(w io.Writer) (*ngSink, error) {
	s := &ngSink{w: bufio.NewWriterSize(w, 1<<20)}
	le := binary.LittleEndian
	opt := func(b []byte, code uint16, v []byte) []byte {
		b = le.AppendUint16(b, code)
		b = le.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
		return append(b, make([]byte, pad4(len(v)))...)
	}
	block := func(typ uint32, body []byte) []byte {
		n := uint32(12 + len(body))
		b := le.AppendUint32(nil, typ)
		b = le.AppendUint32(b, n)
		b = append(b, body...)
		return le.AppendUint32(b, n)
	}
	shb := le.AppendUint32(nil, 0x1A2B3C4D)
	shb = le.AppendUint16(shb, 1)
	shb = le.AppendUint16(shb, 0)
	shb = le.AppendUint64(shb, ^uint64(0))
	shb = opt(shb, 4, []byte("fmslice"))
	shb = opt(shb, 0, nil)
	idb := le.AppendUint16(nil, 1)
	idb = le.AppendUint16(idb, 0)
	idb = le.AppendUint32(idb, chunk.Snaplen)
	idb = opt(idb, 2, []byte("fmcap"))
	idb = opt(idb, 9, []byte{9})
	idb = opt(idb, 0, nil)
	_, err := s.w.Write(append(block(0x0A0D0D0A, shb), block(1, idb)...))
	return s, err
}

func pad4(n int) int { return (4 - n%4) % 4 }

func (s *ngSink) write(ts int64, wireLen uint32, data []byte) error {
	le := binary.LittleEndian
	if ts < 0 {
		ts = 0
	}
	if wireLen < uint32(len(data)) {
		wireLen = uint32(len(data))
	}
	n := uint32(32 + len(data) + pad4(len(data)))
	b := le.AppendUint32(s.buf[:0], 6)
	b = le.AppendUint32(b, n)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, uint32(uint64(ts)>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, wireLen)
	s.buf = b
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if _, err := s.w.Write(data); err != nil {
		return err
	}
	var tail [8]byte
	le.PutUint32(tail[pad4(len(data)):], n)
	_, err := s.w.Write(tail[:pad4(len(data))+4])
	return err
}

func (s *ngSink) flush() error { return s.w.Flush() }
