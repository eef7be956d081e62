package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/fmcap/fmcap/shmring"
)

type options struct {
	files    []string
	now      bool
	pps      float64
	loop     int
	live     bool
	port     uint16
	keepOpen bool
}

type counts struct{ written, dropped, cut uint64 }

type source interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// file is an open capture file of either format.
type file struct {
	f    *os.File
	src  source
	ng   *pcapgo.NgReader
	path string
}

func openFile(path string) (*file, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	m, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: too short to be a capture file", path)
	}
	out := &file{f: f, path: path}
	switch binary.LittleEndian.Uint32(m) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		r, err := pcapgo.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if lt := r.LinkType(); lt != layers.LinkTypeEthernet {
			f.Close()
			return nil, notEthernet(path, lt)
		}
		out.src = r
	case 0x0a0d0d0a:
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if lt := r.LinkType(); lt != layers.LinkTypeEthernet {
			f.Close()
			return nil, notEthernet(path, lt)
		}
		out.src, out.ng = r, r
	default:
		f.Close()
		return nil, fmt.Errorf("%s: not a pcap or pcapng file (magic %08x)", path, binary.LittleEndian.Uint32(m))
	}
	return out, nil
}

func notEthernet(path string, lt layers.LinkType) error {
	return fmt.Errorf("%s: link type %s (%d) is not Ethernet: fmcap stores Ethernet frames only (convert with editcap -T ether, or capture on an Ethernet interface)", path, lt, int(lt))
}

// next returns the next packet, refusing one from a non-Ethernet interface
// of a pcapng file.
func (f *file) next() ([]byte, gopacket.CaptureInfo, error) {
	data, ci, err := f.src.ZeroCopyReadPacketData()
	if err != nil {
		return nil, ci, err
	}
	if f.ng != nil && ci.InterfaceIndex != 0 {
		intf, err := f.ng.Interface(ci.InterfaceIndex)
		if err != nil {
			return nil, ci, fmt.Errorf("%s: %w", f.path, err)
		}
		if intf.LinkType != layers.LinkTypeEthernet {
			return nil, ci, notEthernet(f.path, intf.LinkType)
		}
	}
	return data, ci, nil
}

func checkFile(path string) error {
	f, err := openFile(path)
	if err != nil {
		return err
	}
	return f.f.Close()
}

// inject produces every packet of every file, loop times. A blocking producer
// waits for room (a file has time); --live drops like a NIC.
func inject(ctx context.Context, r *shmring.Ring, opt options) (counts, error) {
	var c counts
	mode := shmring.Blocking
	if opt.live {
		mode = shmring.Live
	}
	p, err := r.NewProducer(mode)
	if err != nil {
		return c, err
	}
	defer func() {
		if opt.keepOpen {
			p.Detach()
		} else {
			p.Close()
		}
	}()
	go func() { <-ctx.Done(); p.Abort() }()
	max := r.MaxCaplen()
	start := time.Now()
	var n uint64
	for pass := 0; opt.loop == 0 || pass < opt.loop; pass++ {
		for _, path := range opt.files {
			f, err := openFile(path)
			if err != nil {
				return c, err
			}
			for {
				data, ci, err := f.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					f.f.Close()
					if errors.Is(err, io.ErrUnexpectedEOF) {
						return c, fmt.Errorf("%s: truncated after %d packets", path, n)
					}
					return c, fmt.Errorf("%s: %w", path, err)
				}
				if ctx.Err() != nil {
					f.f.Close()
					return c, nil
				}
				ts := ci.Timestamp.UnixNano()
				if opt.now {
					ts = time.Now().UnixNano()
				}
				if uint32(len(data)) > max {
					c.cut++
				}
				if _, ok := p.Write(ts, uint32(ci.Length), opt.port, shmring.DirIngress, 0, data); ok {
					c.written++
				} else if ctx.Err() == nil {
					c.dropped++
				}
				n++
				if n%256 == 0 {
					p.Publish()
				}
				if opt.pps > 0 {
					pace(p, start, n, opt.pps)
				}
			}
			f.f.Close()
		}
	}
	return c, nil
}

// pace sleeps when the injection is ahead of the requested rate.
func pace(p *shmring.Producer, start time.Time, n uint64, pps float64) {
	due := start.Add(time.Duration(float64(n) / pps * 1e9))
	if d := time.Until(due); d > 200*time.Microsecond {
		p.Publish()
		time.Sleep(d)
	}
}
