package main

// fmslice flows --by-origin: the flows of a range split by where their
// packets were captured: port, direction and tunnel (the chunk's metadata
// frames, store/chunk FORMAT). The index keeps no origin, so this reads
// every frame of the range (as fmslice --no-index does) and counts each
// packet the filter's flow terms match; packets without stored metadata
// (older or uncompressed chunks) are shown with an unknown origin.

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/origin"
	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// originFlowKey is a flow as seen at one origin.
type originFlowKey struct {
	segment.FlowKey
	known bool
	port  uint16
	dir   uint8
	orig  origin.Origin
}

type originFlow struct {
	originFlowKey
	flags          uint8
	packets, bytes uint64
	first, last    int64
}

// originFlowSink counts the packets slice hands it.
type originFlowSink struct {
	pl    *query.Plan
	p     segment.Packet
	flows map[originFlowKey]*originFlow
}

func (s *originFlowSink) write(ts int64, wireLen uint32, data []byte) error {
	return s.writeMeta(ts, wireLen, data, nil, false)
}

func (s *originFlowSink) writeMeta(ts int64, wireLen uint32, data []byte, pm *chunk.PacketMeta, known bool) error {
	query.DecodePacket(data, &s.p)
	key, flags, ok := segment.KeyOf(&s.p)
	if !ok || !s.pl.MatchFlow(&key) {
		return nil
	}
	k := originFlowKey{FlowKey: key, known: known}
	if known {
		k.port, k.dir, k.orig = pm.Port, pm.Dir, pm.Origin
	}
	f := s.flows[k]
	if f == nil {
		f = &originFlow{originFlowKey: k, first: ts, last: ts}
		s.flows[k] = f
	}
	f.flags |= flags
	f.packets++
	f.bytes += uint64(wireLen)
	f.first, f.last = min(f.first, ts), max(f.last, ts)
	return nil
}

type originFlowRow struct {
	flowRow
	Port      string `json:"capture_port,omitempty"`
	Direction string `json:"direction,omitempty"`
	Tunnel    string `json:"tunnel,omitempty"`
}

// flowsByOrigin answers fmslice flows --by-origin.
func flowsByOrigin(cc *cli.Context, store string, remote *remoteStore, from, to int64, pl *query.Plan, by string) error {
	names, err := portNames(cc.String("config"))
	if err != nil {
		return err
	}
	q := &sliceReq{store: store, remote: remote, from: from, to: to, meta: true}
	sink := &originFlowSink{pl: pl, flows: map[originFlowKey]*originFlow{}}
	dec := chunk.NewDecoder()
	defer dec.Close()
	res, err := slice(q, sink, dec)
	if err != nil {
		return err
	}
	for _, d := range res.damaged {
		fmt.Fprintln(os.Stderr, "fmslice: damaged, not counted:", d)
	}
	originNotice(q, os.Stderr)
	rows := top(sink.flows, func(f *originFlow) (uint64, uint64, int64) { return f.packets, f.bytes, f.first }, by, cc.Int("n"))
	if !cc.Bool("q") {
		fmt.Fprintf(os.Stderr, "fmslice: %d flows by origin from %d packets in %d frames (every frame of the range read: the index keeps no origin)\n", len(sink.flows), res.packets, res.frames)
	}
	out := make([]originFlowRow, len(rows))
	for i, f := range rows {
		r := originFlowRow{flowRow: flowRow{
			Proto: protoName(f.Proto), VLAN: f.VLAN, A: segment.AddrString(f.A), APort: f.APort,
			B: segment.AddrString(f.B), BPort: f.BPort, Packets: f.packets, Bytes: f.bytes,
			First: time.Unix(0, f.first).UTC(), Last: time.Unix(0, f.last).UTC(), Flags: tcpFlags(f.Proto, f.flags),
		}}
		if f.known {
			r.Port, r.Direction, r.Tunnel = portName(names, f.port), dirName(f.dir), f.orig.String()
		}
		out[i] = r
	}
	if cc.Bool("json") {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		if err := e.Encode(out); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PROTO\tA\tPORT\tB\tPORT\tON\tDIR\tPACKETS\tBYTES\tFIRST\tLAST\tFLAGS\tTUNNEL")
		for _, r := range out {
			on, dir := r.Port, r.Direction
			if on == "" {
				on, dir = "?", "?"
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Proto, r.A, r.APort, r.B, r.BPort, on, dir,
				r.Packets, r.Bytes, r.First.Format("15:04:05.000"), r.Last.Format("15:04:05.000"), r.Flags, r.Tunnel)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(res.damaged) > 0 {
		return cli.Exit(fmt.Sprintf("flows incomplete: %d damaged parts of the range were not counted (named above)", len(res.damaged)), exitIncomplete)
	}
	return nil
}
