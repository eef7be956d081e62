package main

// fminject reads with libpcap itself (internal/libpcap), so the ring gets
// what tcpdump reads from the same file: records longer than the file's
// snaplen cut to it, link types in full, libpcap's refusals.
//
// Every regular file is read to its end first (check), so that a file
// libpcap refuses anywhere produces nothing, and the first pass gives the
// totals progress shows. Standard input and pipes can be read only once:
// their packets are produced as they are read, and an error says exactly
// how many were produced before it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/fmcap/fmcap/internal/libpcap"
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

// counts are what inject reports at the end.
type counts struct {
	written, dropped, cut uint64
	produced              uint64 // packets handed to the ring (written or dropped)
	snapped               uint64 // records libpcap cut to their file's snaplen
	overWire              uint64 // records whose captured length exceeds their wire length
	saturated             uint64 // times beyond what int64 nanoseconds hold (1677..2262)
	notes                 []string
}

// input is one file to inject, as the first pass found it.
type input struct {
	path    string
	once    bool   // standard input or a pipe: no first pass, one reading
	packets uint64 // records in the file (first pass; 0 when once)
}

// openInput opens path with libpcap and refuses it unless its link type is
// Ethernet.
func openInput(path string) (*libpcap.File, error) {
	f, err := libpcap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", displayName(path), err)
	}
	if err := checkLinkType(displayName(path), f.LinkType()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// displayName is how messages name a file.
func displayName(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

// readOnce reports whether path can be read only once (no first pass).
func readOnce(path string) bool {
	if path == "-" {
		return true
	}
	st, err := os.Stat(path)
	return err == nil && !st.Mode().IsRegular()
}

// recordError is a file's error at a record, with libpcap's message
// explained where fmcap has more to say.
func recordError(f *libpcap.File, err error) error {
	var re *libpcap.RecordError
	if errors.As(err, &re) {
		e := *re
		e.Msg = explainMixed(e.Msg, f.LinkType())
		return fmt.Errorf("%s: %w", displayName(f.Name()), &e)
	}
	return fmt.Errorf("%s: %w", displayName(f.Name()), err)
}

// check reads the whole file with libpcap and counts its records; any
// error libpcap reports anywhere in it is returned, naming the record.
func check(ctx context.Context, path string, pr *progress) (input, error) {
	in := input{path: path}
	f, err := openInput(path)
	if err != nil {
		return in, err
	}
	defer f.Close()
	for {
		_, err := f.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return in, recordError(f, err)
		}
		in.packets++
		if in.packets%4096 == 0 {
			if ctx.Err() != nil {
				return in, fmt.Errorf("%s: interrupted while checking it, at record %d: nothing was injected", displayName(path), in.packets)
			}
			pr.set(uint64(f.Offset()))
		}
	}
	return in, nil
}

// nanos is a packet's time in Unix nanoseconds, what the ring holds. A pcap
// file's seconds are unsigned 32-bit (libpcap 1.10 reads them signed: times
// after 2038-01-19 come out before 1970; 1.11 and Wireshark read them
// unsigned); pcapng's are 64-bit and pass unchanged, also after 2106 (the
// store decides what it does with times pcap cannot hold). Only times int64
// nanoseconds cannot hold (before 1677, after 2262) are saturated, and
// counted.
func nanos(p *libpcap.Packet, pcapng bool, c *counts) int64 {
	sec := p.Sec
	if !pcapng && sec < 0 {
		sec += 1 << 32
	}
	const maxSec, minSec int64 = math.MaxInt64 / 1_000_000_000, math.MinInt64 / 1_000_000_000
	switch {
	case sec > maxSec || sec == maxSec && p.Nsec > math.MaxInt64-maxSec*1e9:
		c.saturated++
		return math.MaxInt64
	case sec < minSec || sec == minSec && p.Nsec < math.MinInt64-minSec*1e9:
		c.saturated++
		return math.MinInt64
	}
	return sec*1e9 + p.Nsec
}

// inject produces every packet of every input, loop times. A blocking
// producer waits for room (a file has time); --live drops like a NIC.
func inject(ctx context.Context, r *shmring.Ring, opt options, ins []input, pr *progress) (counts, error) {
	var c counts
	mode := shmring.Blocking
	if opt.live {
		mode = shmring.Live
	}
	p, err := r.NewProducer(mode)
	if err != nil {
		return c, fmt.Errorf("ring %s: %w", r.Path(), err)
	}
	defer func() {
		if opt.keepOpen {
			p.Detach()
		} else {
			p.Close()
		}
	}()
	stop := context.AfterFunc(ctx, p.Abort)
	defer stop()
	max := r.MaxCaplen()
	start := time.Now()
	for pass := 0; opt.loop == 0 || pass < opt.loop; pass++ {
		for _, in := range ins {
			f, err := openInput(in.path)
			if err != nil {
				return c, err
			}
			pcapng := f.Format() == libpcap.FormatPcapng
			if n, ok := f.FCSLength(); ok && n > 0 && pass == 0 {
				c.notes = append(c.notes, fmt.Sprintf("%s says each frame ends with a %d-byte FCS; the store's pcap header cannot say so, and tools will take those bytes for a trailer", displayName(in.path), n))
			}
			for {
				pkt, err := f.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					err = recordError(f, err)
					n := f.Count()
					f.Close()
					return c, fmt.Errorf("%w\n%d packets of %s were produced before this error (%d in all)", err, n, displayName(in.path), c.produced)
				}
				if ctx.Err() != nil {
					f.Close()
					return c, nil
				}
				if pkt.Snapped {
					c.snapped++
				}
				if pkt.Caplen > pkt.Len {
					c.overWire++
				}
				ts := nanos(&pkt, pcapng, &c)
				if opt.now {
					ts = time.Now().UnixNano()
				}
				if pkt.Caplen > max {
					c.cut++
				}
				if _, ok := p.Write(ts, pkt.Len, opt.port, shmring.DirIngress, 0, pkt.Data); ok {
					c.written++
				} else if ctx.Err() == nil {
					c.dropped++
				}
				c.produced++
				if c.produced%256 == 0 {
					p.Publish()
					pr.set(c.produced)
				}
				if opt.pps > 0 {
					pr.set(c.produced) // paced: a store per packet is nothing
					pace(p, start, c.produced, opt.pps)
				}
			}
			f.Close()
		}
	}
	pr.set(c.produced)
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

// report writes the notes about what libpcap's reading changed or what
// the ring could not hold; they are printed even with -q, since they say
// the ring does not hold the file's bytes as they are.
func (c counts) report(w io.Writer) {
	for _, n := range c.notes {
		fmt.Fprintf(w, "fminject: %s\n", n)
	}
	if c.snapped > 0 {
		fmt.Fprintf(w, "fminject: %d records longer than the snaplen were truncated, as libpcap does\n", c.snapped)
	}
	if c.overWire > 0 {
		fmt.Fprintf(w, "fminject: %d records have more captured bytes than their wire length; they were produced as libpcap reads them\n", c.overWire)
	}
	if c.saturated > 0 {
		fmt.Fprintf(w, "fminject: %d packet times lie beyond 1677..2262, what the ring's nanoseconds hold, and were saturated\n", c.saturated)
	}
}
