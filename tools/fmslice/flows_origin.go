package main

// fmslice flows --by-origin: the flows of a range split by where their
// packets were captured: fwd's port, direction and tunnel (GWLB endpoint,
// attachment and flow cookie; Traffic Mirroring VNI and outer source). It
// is fmslice flows (flows.go) with each flow's figures per origin: a
// segment's flow origins (store/segment, version 8) answer for the flows
// whose groups lie wholly inside the range, and the rest is read with the
// chunks' metadata frames (store/chunk FORMAT) and counted packet by
// packet: the groups the range's edges cut, the seqs no segment covers,
// and the seqs of segments written before version 8, which keep no
// origin per flow. Rows, counts and order are the same either way: a flow
// counts at each origin the packets it has there in the range. Packets
// without stored metadata (chunks written before it was kept, uncompressed
// chunks written before their metadata sidecar) are shown with an unknown
// origin, read or indexed by --rebuild; the live indexer is told every
// packet's origin by the ring, so from its segments those of such chunks
// show theirs. A flow's rule is not shown: flows at origins differing only
// by rule are one row.

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/query"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// originFlowSink hands the packets fmslice's pipeline reads to the
// counter, with the origin their stored metadata gives.
type originFlowSink struct{ c *query.FlowCounter }

func (s *originFlowSink) write(ts int64, wireLen uint32, data []byte) error {
	return s.writeSeqMeta(unknownSeq, ts, wireLen, data, nil, false)
}

func (s *originFlowSink) writeSeqMeta(seq uint64, ts int64, wireLen uint32, data []byte, pm *chunk.PacketMeta, known bool) error {
	var o query.OriginKey
	if known {
		o = query.OriginKey{Known: true, Port: pm.Port, Dir: pm.Dir, Origin: pm.Origin}
	}
	s.c.CountOrigin(seq, seq != unknownSeq, ts, wireLen, data, &o)
	return nil
}

// originFlow is a row: a flow (its key and figures) at one origin.
type originFlow struct {
	query.OriginKey
	*segment.Flow
}

type originFlowRow struct {
	flowRow
	Port      string `json:"capture_port,omitempty"`
	Direction string `json:"direction,omitempty"`
	Tunnel    string `json:"tunnel,omitempty"`
}

// flowsByOrigin answers fmslice flows --by-origin.
func flowsByOrigin(cc *cli.Context, store, dir string, remote *remoteStore, fa *flowArgs) error {
	names, err := portNames(cc.String("config"))
	if err != nil {
		return err
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	fq := &flowQuery{store: store, dir: dir, remote: remote, from: fa.from, to: fa.to, pl: fa.pl, dec: dec, byOrigin: true}
	ans, err := fq.run()
	if err != nil {
		return err
	}
	metaBadNotice(fq.metaBad, os.Stderr)
	fq.report(ans, fa.expr, cc.Bool("q"))
	flows := make(map[query.OriginFlowKey]originFlow, len(ans.ByOrigin))
	for k, f := range ans.ByOrigin {
		flows[k] = originFlow{k.OriginKey, f}
	}
	rows := top(flows, func(f originFlow) (uint64, uint64, int64) { return f.Packets, f.Bytes, f.First }, fa.by, cc.Int("n"))
	out := make([]originFlowRow, len(rows))
	for i, f := range rows {
		r := originFlowRow{flowRow: flowRow{
			Proto: protoName(f.Proto), VLAN: f.VLAN, A: segment.AddrString(f.A), APort: f.APort,
			B: segment.AddrString(f.B), BPort: f.BPort, Packets: f.Packets, Bytes: f.Bytes,
			First: time.Unix(0, f.First).UTC(), Last: time.Unix(0, f.Last).UTC(), Flags: tcpFlags(f.Proto, f.Flags),
		}}
		if f.Known {
			r.Port, r.Direction, r.Tunnel = portName(names, f.Port), dirName(f.Dir), f.Origin.String()
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
	if len(ans.Damaged) > 0 {
		return cli.Exit(fmt.Sprintf("flows incomplete: %d damaged parts of the range were not counted (named above)", len(ans.Damaged)), exitIncomplete)
	}
	return nil
}
