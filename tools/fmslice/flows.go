package main

// fmslice flows: the flows of exactly the range asked, top talkers first.
//
// The index answers for what it can answer exactly and the frames are read
// for the rest, so the figures are tcpdump's for the same range and filter:
//
//   - a segment's flow table gives a flow's packets and bytes over the whole
//     segment; where every group the flow appears in lies wholly inside the
//     range (by the group times), those are the flow's figures in the range,
//     and nothing is read;
//   - for any other flow the filter matches, the groups it appears in that
//     the range's edges cut or that lie inside are read, and its packets in
//     the range counted one by one (the same decoder as the indexer's);
//   - seqs no valid segment covers (the open chunk, not indexed yet, missed
//     by the indexer, a segment that fails its checksum, reaches into seqs
//     retention removed or past the last seq stored yet) are read whole;
//   - a frame that cannot be read makes the answer incomplete: it is named
//     on stderr and the exit status is 3.
//
// An s3:// store is read as the slice reads it (store.go): the segments
// reaching into the range fetched once into the cache, the frames to read
// with range GETs; what bucket retention removed comes from its records.
//
// The filter is evaluated on each flow's key (query.Plan.MatchFlow). A
// flow holds both directions, so src and dst mean either end here; its
// protocol is the last IPv6 extension header's next header.

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/timespec"
	"github.com/fmcap/fmcap/query"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
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

// storeArgs are the store (--store, or the configuration's writer.store)
// and index directory (--index, default STORE/index) a subcommand reads.
// An s3:// store is opened (remote); its index is the segments want asks
// for (nil: all), fetched into the cache.
func storeArgs(cc *cli.Context, want func(*remoteStore) string) (store, index string, remote *remoteStore, err error) {
	if err := cliutil.FromConfig(cc, "store", "writer", "store"); err != nil {
		return "", "", nil, err
	}
	store = cc.String("store")
	if store == "" {
		return "", "", nil, fmt.Errorf("--store DIR is required (or writer.store in --config)")
	}
	if want == nil {
		if err := localOnly(cc.Command.Name, store); err != nil {
			return "", "", nil, err
		}
	}
	if remote, err = openStore(cc, store); err != nil {
		return "", "", nil, err
	}
	index = cc.String("index")
	if index == "" && remote != nil {
		index = want(remote)
	} else if index == "" {
		index = fmstore.Index(store)
	}
	return store, index, remote, nil
}

func flows(cc *cli.Context) error {
	if stores := splitStores(cc.String("store")); len(stores) > 1 {
		return flowsMerged(cc, stores)
	}
	fa, err := parseFlowArgs(cc)
	if err != nil {
		return err
	}
	from, to, expr, pl, by := fa.from, fa.to, fa.expr, fa.pl, fa.by
	store, dir, remote, err := storeArgs(cc, func(r *remoteStore) string { return r.indexDir(from, to) })
	if err != nil {
		return err
	}
	if cc.Bool("by-origin") { // flows_origin.go
		return flowsByOrigin(cc, store, dir, remote, fa)
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	fq := &flowQuery{store: store, remote: remote, dir: dir, from: from, to: to, pl: pl, dec: dec}
	ans, err := fq.run()
	if err != nil {
		return err
	}
	fq.report(ans, expr, cc.Bool("q"))
	return answerFlows(cc, ans, by)
}

// flowArgs are fmslice flows' range, filter and order.
type flowArgs struct {
	from, to int64
	expr     string
	pl       *query.Plan
	by       string
}

func parseFlowArgs(cc *cli.Context) (*flowArgs, error) {
	from, to, err := timespec.Range(cc.String("from"), cc.String("to"))
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, timespec.EmptyRange(cc.String("from"), cc.String("to"))
	}
	expr := strings.TrimSpace(strings.Join(cc.Args().Slice(), " "))
	pl, ok := query.ParseFilter(expr)
	if !ok {
		return nil, fmt.Errorf("filter %q: flows answer host, net, port, portrange, tcp/udp/icmp/icmp6/sctp, ip/ip6, ip proto N with and, or, not and parentheses; for anything else extract the packets (fmslice ... FILTER) and use tshark -z conv", expr)
	}
	by := cc.String("by")
	if by != "bytes" && by != "packets" {
		return nil, fmt.Errorf("--by %q: bytes or packets", by)
	}
	return &flowArgs{from, to, expr, pl, by}, nil
}

// answerFlows writes the top flows and says whether the answer is whole.
func answerFlows(cc *cli.Context, ans *query.FlowAnswer, by string) error {
	if err := writeFlows(topFlows(ans.Flows, by, cc.Int("n")), cc.Bool("json")); err != nil {
		return err
	}
	if len(ans.Damaged) > 0 {
		return cli.Exit(fmt.Sprintf("flows incomplete: %d damaged parts of the range were not counted (named above)", len(ans.Damaged)), exitIncomplete)
	}
	return nil
}

// report tells stderr what the answer rests on: segments refused, chunks
// damaged or repaired, retention's removals, the counts (unless quiet), and
// why a range with no packet is empty.
func (fq *flowQuery) report(ans *query.FlowAnswer, expr string, quiet bool) {
	for _, r := range ans.Refused {
		fmt.Fprintf(os.Stderr, "fmslice: index segment refused, its range was read instead: %s\n", r)
	}
	for _, n := range ans.Notes {
		fmt.Fprintln(os.Stderr, "fmslice: warning: damaged, repaired:", n)
	}
	for _, d := range ans.Repaired {
		fmt.Fprintln(os.Stderr, "fmslice: warning: damaged, repaired (every frame found):", d)
	}
	for _, d := range ans.Damaged {
		fmt.Fprintln(os.Stderr, "fmslice: damaged, not counted:", d)
	}
	retentionNotice(removedFrom(fq.store, fq.remote), fq.from, fq.to)
	if fq.remote == nil {
		fmstore.CountQuery(fq.store)
	}
	if !quiet {
		n, what := len(ans.Flows), "flows"
		if len(ans.ByOrigin) > 0 {
			n, what = len(ans.ByOrigin), "flows by origin"
		}
		fmt.Fprintf(os.Stderr, "fmslice flows: %d packets in %d %s: %d counted by the index, %d read from %d frames (%s)\n",
			ans.Packets, n, what, ans.FromIndex, ans.Packets-ans.FromIndex, ans.Frames, ans.Why())
	}
	if ans.Packets == 0 {
		emptyNotice(span(fq.store, fq.remote), fq.from, fq.to, expr != "")
	}
}

// topFlows is the flows, most bytes (or packets, by) first, at most n
// (0: all).
func topFlows(flows map[segment.FlowKey]*segment.Flow, by string, n int) []*segment.Flow {
	return top(flows, func(f *segment.Flow) (uint64, uint64, int64) { return f.Packets, f.Bytes, f.First }, by, n)
}

// top is m's values in the order of fmslice flows' rows: most bytes (or
// packets, by) first, then most packets, then the earliest; at most n (0:
// all). stat gives a value's packets, bytes and first time.
func top[K comparable, V any](m map[K]V, stat func(V) (pkts, bytes uint64, first int64), by string, n int) []V {
	rows := make([]V, 0, len(m))
	for _, v := range m {
		rows = append(rows, v)
	}
	sort.Slice(rows, func(i, j int) bool {
		ap, ab, af := stat(rows[i])
		bp, bb, bf := stat(rows[j])
		if by == "packets" && ap != bp {
			return ap > bp
		}
		if ab != bb {
			return ab > bb
		}
		if ap != bp {
			return ap > bp
		}
		return af < bf
	})
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	return rows
}

// writeFlows prints the rows as a table, or JSON.
func writeFlows(rows []*segment.Flow, asJSON bool) error {
	out := make([]flowRow, len(rows))
	for i, f := range rows {
		out[i] = flowRow{
			Proto: protoName(f.Proto), VLAN: f.VLAN, A: segment.AddrString(f.A), APort: f.APort,
			B: segment.AddrString(f.B), BPort: f.BPort, Packets: f.Packets, Bytes: f.Bytes,
			First: time.Unix(0, f.First).UTC(), Last: time.Unix(0, f.Last).UTC(), Flags: tcpFlags(f.Proto, f.Flags),
		}
	}
	if asJSON {
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

// checkStore says what is wrong with a store directory, if anything.
func checkStore(store string) error {
	st, err := os.Stat(store)
	if err != nil {
		return fmt.Errorf("store %q: %w", store, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("store %q is not a directory", store)
	}
	return nil
}

// flowQuery is one fmslice flows.
type flowQuery struct {
	store, dir string
	remote     *remoteStore // store is s3://…; nil: a local directory
	from, to   int64
	pl         *query.Plan
	dec        *zstd.Decoder
	byOrigin   bool  // --by-origin: the answer's ByOrigin, the frames' metadata read
	metaBad    int64 // --by-origin: frames read whose metadata was damaged
}

// run answers the query. A chunk whose frame table was lost (frames of
// unknown seqs) cannot be matched with the index by seq: the segments
// reaching into it are then set aside and its seqs read whole (a second
// pass, rarely needed).
func (fq *flowQuery) run() (*query.FlowAnswer, error) {
	var exclude []query.SeqRange
	var notes []string
	for {
		ans, retry, err := fq.pass(exclude)
		if err != nil || retry == nil {
			if ans != nil {
				ans.Notes = notes
			}
			return ans, err
		}
		exclude = append(exclude, retry.seqs)
		notes = append(notes, fmt.Sprintf("chunk %q: %s: the index cannot be matched with its frames, so its seqs were read instead", retry.name, retry.why))
	}
}

// retryChunk is a chunk whose frames cannot be matched with the index.
type retryChunk struct {
	seqs      query.SeqRange
	name, why string
}

func (fq *flowQuery) pass(exclude []query.SeqRange) (*query.FlowAnswer, *retryChunk, error) {
	chunks, err := listChunks(fq.store, fq.remote)
	if err != nil {
		return nil, nil, err
	}
	if len(chunks) == 0 {
		return nil, nil, fmt.Errorf("store %q holds no chunks (is the writer running, and is this its --store?)", fq.store)
	}
	// The live indexer may be a little ahead of the writer (a frame is
	// published after up to --flush): a segment reaching past the last
	// stored seq would count packets fmslice does not find yet. Such a
	// segment is not used; what is stored of its range is read.
	var stored uint64
	for _, in := range chunks {
		if !in.Open {
			stored = max(stored, in.LastSeq)
		} else if fr := openFrames(fq.store, in); len(fr) > 0 {
			stored = max(stored, fr[len(fr)-1].LastSeq)
		}
	}
	ans := query.NewFlowAnswer()
	qf := &query.FlowQuery{Store: fq.store, Dir: fq.dir, From: fq.from, To: fq.to, Plan: fq.pl, ByOrigin: fq.byOrigin}
	if fq.remote != nil { // what bucket retention removed, from its records
		qf.Store = ""
		if qf.Through, err = removedThrough(fq.store, fq.remote); err != nil {
			return nil, nil, err
		}
	}
	counter, pl := qf.UseSegments(ans, exclude, stored)
	var read []chunk.Info
	for _, in := range chunks {
		if in.Overlaps(fq.from, fq.to) && pl.Need(in.FirstSeq, in.LastSeq) {
			read = append(read, in) // else the index answered for all of it
		}
	}
	if len(read) == 0 {
		return ans, nil, nil
	}
	// The frames holding seqs to read go through fmslice's own pipeline
	// (decompressed on every core, picked by seq and time), into a sink
	// that counts each packet the index did not.
	q := &sliceReq{store: fq.store, remote: fq.remote, from: fq.from, to: fq.to, need: pl.Need, must: pl.Must, meta: fq.byOrigin}
	var sk sink = &flowSink{counter}
	if fq.byOrigin {
		sk = &originFlowSink{counter}
	}
	res, err := sliceList(q, read, sk, fq.dec)
	if err != nil {
		return nil, nil, err
	}
	fq.metaBad = q.metaBad.Load() // this pass's: a retry reads again
	for _, in := range res.rebuilt {
		if coveredAny(pl.Covered, in.FirstSeq, in.LastSeq) {
			return nil, &retryChunk{query.SeqRange{Lo: in.FirstSeq, Hi: in.LastSeq}, in.Name, "its frame table was rebuilt"}, nil
		}
	}
	ans.Frames = res.frames
	ans.Damaged = append(ans.Damaged, res.damaged...)
	ans.Repaired = append(ans.Repaired, res.repaired...)
	return ans, nil, nil
}

// flowSink hands the packets fmslice's pipeline reads to the counter.
type flowSink struct{ c *query.FlowCounter }

func (k *flowSink) write(ts int64, wireLen uint32, data []byte) error {
	k.c.Count(0, false, ts, wireLen, data)
	return nil
}

func (k *flowSink) writeSeq(seq uint64, ts int64, wireLen uint32, data []byte) error {
	k.c.Count(seq, seq != unknownSeq, ts, wireLen, data)
	return nil
}

// coveredAny says whether any seq of lo..Hi is in the sorted ranges rs.
func coveredAny(rs []query.SeqRange, lo, hi uint64) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Hi >= lo })
	return i < len(rs) && rs[i].Lo <= hi
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
