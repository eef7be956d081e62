package main

import (
	"bufio"
	"io"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"fmcap/writer/chunk"
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

// ngSink writes pcapng with one Ethernet interface at nanosecond resolution.
type ngSink struct {
	w  *pcapgo.NgWriter
	bw *bufio.Writer
}

func newNgSink(w io.Writer) (*ngSink, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	ng, err := pcapgo.NewNgWriterInterface(bw, pcapgo.NgInterface{
		Name: "fmcap", LinkType: layers.LinkTypeEthernet, SnapLength: chunk.Snaplen, TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "fmslice"}})
	if err != nil {
		return nil, err
	}
	return &ngSink{w: ng, bw: bw}, nil
}

func (s *ngSink) write(ts int64, wireLen uint32, data []byte) error {
	return s.w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(0, ts), CaptureLength: len(data), Length: int(wireLen)}, data)
}

func (s *ngSink) flush() error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.bw.Flush()
}
