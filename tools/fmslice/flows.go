package main

// fmslice flows: the flow table of a range, from the index segments alone.
// Segments overlapping the range in time are merged flow by flow (so a
// flow's figures cover whole segments: by default one per 10 s or 1 M
// packets); the filter is evaluated exactly on each flow's key. A flow
// holds both directions, so src and dst mean either end here; its protocol
// is the last IPv6 extension header's next header.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/indexer/segment"
	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/timespec"
	"github.com/fmcap/fmcap/writer/chunk"
)

type flowRow struct {
	Proto   string    `json:"proto"`
	VLAN    uint16    `json:"vlan,omitempty"`
	A       string    `json:"a"`
	APort   uint16    `json:"a_port"`
	B       string    `json:"b"`
	BPort   uint16    `json:"b_port"`
	Packets uint64    `json:"packets"`
	Bytes   uint64    `json:"bytes"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	Flags   string    `json:"tcp_flags,omitempty"`
}

func flows(cc *cli.Context) error {
	if err := cliutil.FromConfig(cc, "store", "writer", "store"); err != nil {
		return err
	}
	store := cc.String("store")
	if store == "" {
		return fmt.Errorf("--store DIR is required (or writer.store in --config)")
	}
	dir := cc.String("index")
	if dir == "" {
		dir = filepath.Join(store, "index")
	}
	from, to, err := timespec.Range(cc.String("from"), cc.String("to"))
	if err != nil {
		return err
	}
	expr := strings.TrimSpace(strings.Join(cc.Args().Slice(), " "))
	pl, ok := segment.ParseFilter(expr)
	if !ok {
		return fmt.Errorf("filter %q: flows answer host, net, port, portrange, tcp/udp/icmp/icmp6/sctp, ip/ip6, ip proto N with and, or, not and parentheses; for anything else extract the packets (fmslice ... FILTER) and use tshark -z conv", expr)
	}
	by := cc.String("by")
	if by != "bytes" && by != "packets" {
		return fmt.Errorf("--by %q: bytes or packets", by)
	}
	segs, err := segment.List(dir)
	if err != nil || len(segs) == 0 {
		return fmt.Errorf("no index in %s (is the indexer running? indexer --rebuild --store %s builds one)", dir, store)
	}
	merged := map[segment.FlowKey]*segment.Flow{}
	var covered uint64
	// A segment reaching into seqs retention removed (left by a writer that
	// died between removing a chunk and its segments) would count packets
	// that are gone: it is not used.
	removed, _ := chunk.RemovedRanges(store) // unreadable: nothing removed as far as we know
	var gone uint64
	for _, r := range removed {
		gone = max(gone, r.LastSeq)
	}
	for _, e := range segs {
		if e.First <= gone {
			continue
		}
		s, err := segment.Open(dir, e)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fmslice: index segment refused, its flows are missing: %v\n", err)
			continue
		}
		if s.Indexed == 0 || s.MaxTS < from || s.MinTS >= to {
			s.Close()
			continue
		}
		table, err := s.FlowTable()
		s.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "fmslice: index segment %s: its flows are missing: %v\n", e.Name, err)
			continue
		}
		covered += s.Indexed
		for i := range table {
			f := &table[i]
			if !pl.MatchFlow(&f.FlowKey) {
				continue
			}
			m := merged[f.FlowKey]
			if m == nil {
				c := *f
				c.Groups = nil
				merged[f.FlowKey] = &c
				continue
			}
			m.Packets += f.Packets
			m.Bytes += f.Bytes
			m.First, m.Last = min(m.First, f.First), max(m.Last, f.Last)
			m.Flags |= f.Flags
		}
	}
	// Say when stored packets of the range are not indexed.
	if list, err := chunk.List(store); err == nil {
		var stored uint64
		for _, c := range list {
			if !c.Open && c.Overlaps(from, to) {
				stored += c.LastSeq - c.FirstSeq + 1
			}
		}
		if covered < stored {
			fmt.Fprintf(os.Stderr, "fmslice: the index holds %d of the %d packets stored in this range; the rest is not indexed yet (indexer --rebuild --store %s)\n", covered, stored, store)
		}
	}
	retentionNotice(removed, from, to)
	chunk.CountQuery(store)
	rows := make([]*segment.Flow, 0, len(merged))
	for _, f := range merged {
		rows = append(rows, f)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if by == "packets" && a.Packets != b.Packets {
			return a.Packets > b.Packets
		}
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Packets > b.Packets
	})
	if n := cc.Int("n"); n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	out := make([]flowRow, len(rows))
	for i, f := range rows {
		out[i] = flowRow{
			Proto: protoName(f.Proto), VLAN: f.VLAN, A: segment.AddrString(f.A), APort: f.APort,
			B: segment.AddrString(f.B), BPort: f.BPort, Packets: f.Packets, Bytes: f.Bytes,
			First: time.Unix(0, f.First).UTC(), Last: time.Unix(0, f.Last).UTC(), Flags: tcpFlags(f.Proto, f.Flags),
		}
	}
	if cc.Bool("json") {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "PROTO\tA\tPORT\tB\tPORT\tPACKETS\tBYTES\tFIRST\tLAST\tFLAGS\t")
	for _, r := range out {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t\n", r.Proto, r.A, r.APort, r.B, r.BPort, r.Packets, r.Bytes,
			r.First.Format("15:04:05.000"), r.Last.Format("15:04:05.000"), r.Flags)
	}
	return w.Flush()
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmp6"
	case 132:
		return "sctp"
	}
	return fmt.Sprint(p)
}

func tcpFlags(proto, f uint8) string {
	if proto != 6 {
		return ""
	}
	var b []byte
	for i, c := range "FSRPAUEC" {
		if f&(1<<i) != 0 {
			b = append(b, byte(c))
		}
	}
	return string(b)
}
