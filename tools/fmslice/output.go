package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
)

// pcapSink writes standard pcap with nanosecond timestamps: the same bytes
// the chunks hold, so packets and times come out exactly as captured.
type pcapSink struct {
	w   *bufio.Writer
	raw io.Writer // under w: runs of records large enough go straight to it
	buf []byte
}

func newPcapSink(w io.Writer) (*pcapSink, error) {
	s := &pcapSink{w: bufio.NewWriterSize(w, 1<<20), raw: w}
	_, err := s.w.Write(chunk.PcapHeader())
	return s, err
}

func (s *pcapSink) write(ts int64, wireLen uint32, data []byte) error {
	s.buf, _ = chunk.AppendPacket(s.buf[:0], ts, wireLen, data)
	_, err := s.w.Write(s.buf)
	return err
}

// records writes packet records as the chunk holds them: a chunk is pcap
// with nanosecond times, so its records are already the bytes write would
// make of each packet (header, then the captured bytes). A run of
// directRun bytes or more (a time slice's whole batch of frames) is written
// from the caller's buffer as it is: copying it into w first was a tenth
// of a time slice's CPU (memmove in perf), for no fewer write calls.
func (s *pcapSink) records(b []byte) error {
	if len(b) < directRun {
		_, err := s.w.Write(b)
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	_, err := s.raw.Write(b)
	return err
}

// directRun is the smallest run of records pcapSink.records writes
// without copying it into its buffer: large enough that the write call
// costs little beside the bytes.
const directRun = 64 << 10

func (s *pcapSink) flush() error { return s.w.Flush() }

// ngSink writes pcapng (draft-ietf-opsawg-pcapng), little-endian: one
// Section Header Block, then an Interface Description Block for each
// interface as it is first used, and an Enhanced Packet Block per packet.
// Block layouts, all lengths in bytes and blocks and options padded to 4:
//
//	SHB: type 0x0A0D0D0A, total length, byte-order magic 0x1A2B3C4D,
//	     version 1.0 (u16 u16), section length -1 (i64), options
//	     (shb_userappl = "fmslice", end), total length
//	IDB: type 1, total length, link type 1 (u16), reserved (u16),
//	     snaplen (u32), options (if_name, if_description, if_tsresol = 9:
//	     nanoseconds, end), total length
//	EPB: type 6, total length, interface id, timestamp high and low u32
//	     (ns since 1970), captured length, original length, data padded,
//	     options (when the packet's metadata is known: epb_flags, opt_comment,
//	     end), total length
//
// Interfaces: one per (port, tunnel) of the packets' stored metadata
// (store/chunk FORMAT), named by the tunnel when there is one
// ("gwlb:<endpoint id, 16 hex digits>", "mirror:vni-<N>"; "@<port>" is
// added when that name is taken by the same tunnel on another port), else
// by the port (its name in --config's fwd.ports, else "port<N>");
// if_description says both. In a merge of several stores each store's
// interfaces are its own, their names prefixed "<node>/" (the node of an
// s3:// store, the path of a local one) and their descriptions "node
// <node>: ". Packets whose metadata is unknown (chunks
// written before it was kept, damaged metadata) go to an interface named "fmcap",
// without options. epb_flags bits 0-1 give the direction: 01 inbound (the
// ring's ingress copy), 10 outbound (egress); an inline copy (rewritten to
// show the end hosts to each other) has neither. opt_comment holds
// "port=<name> dir=<in|out|inline> rule=<id>" and, for a tunnel, its whole
// identity ("gwlb endpoint=… attachment=… cookie=…" or "mirror vni=…
// src=…"), which tshark shows as frame.comment.
//
// Written here rather than with gopacket/pcapgo: see bpf.go.
type ngSink struct {
	w      *bufio.Writer
	buf    []byte
	ports  []string // port names, by index (--config)
	ifaces map[ifaceKey]uint32
	names  map[string]bool
	// nodes names the stores of a merge (runMerged), one per store, and
	// node is the store of the packet being written: each node's packets
	// get interfaces of their own, named "<node>/<name>" and described as
	// the node's, so that a merged answer still says where each packet
	// was captured (tshark: frame.interface_name). nil: one store.
	nodes []string
	node  int
}

// ifaceKey is what makes a pcapng interface: the port and the tunnel
// (kind and endpoint id or VNI); known is false for the "fmcap" interface
// of packets without metadata.
type ifaceKey struct {
	node  int
	known bool
	port  uint16
	kind  origin.Kind
	id    uint64
}

var le = binary.LittleEndian

func ngOpt(b []byte, code uint16, v []byte) []byte {
	b = le.AppendUint16(b, code)
	b = le.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	return append(b, make([]byte, pad4(len(v)))...)
}

func ngBlock(b []byte, typ uint32, body []byte) []byte {
	n := uint32(12 + len(body))
	b = le.AppendUint32(b, typ)
	b = le.AppendUint32(b, n)
	b = append(b, body...)
	return le.AppendUint32(b, n)
}

func newNgSink(w io.Writer, ports []string) (*ngSink, error) {
	s := &ngSink{w: bufio.NewWriterSize(w, 1<<20), ports: ports, ifaces: map[ifaceKey]uint32{}, names: map[string]bool{}}
	shb := le.AppendUint32(nil, 0x1A2B3C4D)
	shb = le.AppendUint16(shb, 1)
	shb = le.AppendUint16(shb, 0)
	shb = le.AppendUint64(shb, ^uint64(0))
	shb = ngOpt(shb, 4, []byte("fmslice"))
	shb = ngOpt(shb, 0, nil)
	_, err := s.w.Write(ngBlock(nil, 0x0A0D0D0A, shb))
	return s, err
}

func pad4(n int) int { return (4 - n%4) % 4 }

// iface is the interface id for a packet, its IDB written when first used.
func (s *ngSink) iface(pm *chunk.PacketMeta, known bool) (uint32, error) {
	k := ifaceKey{node: s.node, known: known}
	if known {
		k.port, k.kind = pm.Port, pm.Origin.Kind
		if ep, _, _, ok := pm.Origin.GWLB(); ok {
			k.id = ep
		} else if vni, _, ok := pm.Origin.Mirror(); ok {
			k.id = uint64(vni)
		} else {
			k.kind = origin.None
		}
	}
	if id, ok := s.ifaces[k]; ok {
		return id, nil
	}
	id := uint32(len(s.ifaces))
	prefix := ""
	if s.nodes != nil {
		prefix = s.nodes[s.node] + "/"
	}
	name, desc := prefix+"fmcap", "packets whose port and origin were not stored"
	if known {
		port := portName(s.ports, pm.Port)
		name, desc = prefix+port, fmt.Sprintf("fwd port %s (index %d)", port, pm.Port)
		if t := pm.Origin.Tunnel(); t != "" && k.kind != origin.None {
			name = prefix + t
			if s.names[name] {
				name += "@" + port
			}
			if k.kind == origin.GWLB {
				desc += fmt.Sprintf(", GWLB endpoint %016x (GENEVE)", k.id)
			} else {
				desc += fmt.Sprintf(", Traffic Mirroring VNI %d (VXLAN)", k.id)
			}
		}
	}
	if s.nodes != nil {
		desc = "node " + s.nodes[s.node] + ": " + desc
	}
	s.names[name] = true
	idb := le.AppendUint16(nil, 1)
	idb = le.AppendUint16(idb, 0)
	idb = le.AppendUint32(idb, chunk.Snaplen)
	idb = ngOpt(idb, 2, []byte(name))
	idb = ngOpt(idb, 3, []byte(desc))
	idb = ngOpt(idb, 9, []byte{9})
	idb = ngOpt(idb, 0, nil)
	if _, err := s.w.Write(ngBlock(nil, 1, idb)); err != nil {
		return 0, err
	}
	s.ifaces[k] = id
	return id, nil
}

func (s *ngSink) write(ts int64, wireLen uint32, data []byte) error {
	return s.writeMeta(ts, wireLen, data, nil, false)
}

func (s *ngSink) writeMeta(ts int64, wireLen uint32, data []byte, pm *chunk.PacketMeta, known bool) error {
	id, err := s.iface(pm, known)
	if err != nil {
		return err
	}
	if ts < 0 {
		ts = 0
	}
	if wireLen < uint32(len(data)) {
		wireLen = uint32(len(data))
	}
	var opts []byte
	if known {
		var fl [4]byte
		switch shmring.Dir(pm.Dir) {
		case shmring.DirIngress:
			fl[0] = 1
		case shmring.DirEgress:
			fl[0] = 2
		}
		opts = ngOpt(s.buf[:0], 2, fl[:])
		c := fmt.Appendf(nil, "port=%s dir=%s rule=%d", portName(s.ports, pm.Port), dirName(pm.Dir), pm.Rule)
		if o := pm.Origin.String(); o != "" {
			c = append(append(c, ' '), o...)
		}
		opts = ngOpt(opts, 1, c)
		opts = ngOpt(opts, 0, nil)
	}
	n := uint32(32 + len(data) + pad4(len(data)) + len(opts))
	hdr := le.AppendUint32(nil, 6)
	hdr = le.AppendUint32(hdr, n)
	hdr = le.AppendUint32(hdr, id)
	hdr = le.AppendUint32(hdr, uint32(uint64(ts)>>32))
	hdr = le.AppendUint32(hdr, uint32(ts))
	hdr = le.AppendUint32(hdr, uint32(len(data)))
	hdr = le.AppendUint32(hdr, wireLen)
	if _, err := s.w.Write(hdr); err != nil {
		return err
	}
	if _, err := s.w.Write(data); err != nil {
		return err
	}
	var pad [4]byte
	if _, err := s.w.Write(pad[:pad4(len(data))]); err != nil {
		return err
	}
	if _, err := s.w.Write(opts); err != nil {
		return err
	}
	s.buf = opts
	var tail [4]byte
	le.PutUint32(tail[:], n)
	_, err = s.w.Write(tail[:])
	return err
}

// flush writes what is buffered; an output without packets still gets
// the "fmcap" interface, as readers that want one interface at least
// (gopacket's) expect.
func (s *ngSink) flush() error {
	if len(s.ifaces) == 0 {
		if _, err := s.iface(nil, false); err != nil {
			return err
		}
	}
	return s.w.Flush()
}
