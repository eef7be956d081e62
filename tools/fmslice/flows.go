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
// The filter is evaluated on each flow's key (query.Plan.MatchFlow). A
// flow holds both directions, so src and dst mean either end here; its
// protocol is the last IPv6 extension header's next header.

import (
	"encoding/json"
	"errors"
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
func storeArgs(cc *cli.Context) (store, index string, err error) {
	if err := cliutil.FromConfig(cc, "store", "writer", "store"); err != nil {
		return "", "", err
	}
	store = cc.String("store")
	if store == "" {
		return "", "", fmt.Errorf("--store DIR is required (or writer.store in --config)")
	}
	index = cc.String("index")
	if index == "" {
		index = fmstore.Index(store)
	}
	return store, index, checkStore(store)
}

func flows(cc *cli.Context) error {
	store, dir, err := storeArgs(cc)
	if err != nil {
		return err
	}
	from, to, err := timespec.Range(cc.String("from"), cc.String("to"))
	if err != nil {
		return err
	}
	if from == to {
		return timespec.EmptyRange(cc.String("from"), cc.String("to"))
	}
	expr := strings.TrimSpace(strings.Join(cc.Args().Slice(), " "))
	pl, ok := query.ParseFilter(expr)
	if !ok {
		return fmt.Errorf("filter %q: flows answer host, net, port, portrange, tcp/udp/icmp/icmp6/sctp, ip/ip6, ip proto N with and, or, not and parentheses; for anything else extract the packets (fmslice ... FILTER) and use tshark -z conv", expr)
	}
	by := cc.String("by")
	if by != "bytes" && by != "packets" {
		return fmt.Errorf("--by %q: bytes or packets", by)
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	fq := &flowQuery{store: store, dir: dir, from: from, to: to, pl: pl, dec: dec}
	ans, err := fq.run()
	if err != nil {
		return err
	}
	ans.report(store, from, to, expr, cc.Bool("q"))
	if err := writeFlows(topFlows(ans.flows, by, cc.Int("n")), cc.Bool("json")); err != nil {
		return err
	}
	if len(ans.damaged) > 0 {
		return cli.Exit(fmt.Sprintf("flows incomplete: %d damaged parts of the range were not counted (named above)", len(ans.damaged)), exitIncomplete)
	}
	return nil
}

// report tells stderr what the answer rests on: segments refused, chunks
// damaged or repaired, retention's removals, the counts (unless quiet), and
// why a range with no packet is empty.
func (ans *flowAnswer) report(store string, from, to int64, expr string, quiet bool) {
	for _, r := range ans.refused {
		fmt.Fprintf(os.Stderr, "fmslice: index segment refused, its range was read instead: %s\n", r)
	}
	for _, n := range ans.notes {
		fmt.Fprintln(os.Stderr, "fmslice: warning: damaged, repaired:", n)
	}
	for _, d := range ans.repaired {
		fmt.Fprintln(os.Stderr, "fmslice: warning: damaged, repaired (every frame found):", d)
	}
	for _, d := range ans.damaged {
		fmt.Fprintln(os.Stderr, "fmslice: damaged, not counted:", d)
	}
	removed, _ := fmstore.RemovedRanges(store) // unreadable: nothing removed as far as we know
	retentionNotice(removed, from, to)
	fmstore.CountQuery(store)
	if !quiet {
		fmt.Fprintf(os.Stderr, "fmslice flows: %d packets in %d flows: %d counted by the index, %d read from %d frames (%s)\n",
			ans.packets, len(ans.flows), ans.fromIndex, ans.packets-ans.fromIndex, ans.frames, ans.why())
	}
	if ans.packets == 0 {
		emptyNotice(store, from, to, expr != "")
	}
}

// topFlows is the flows, most bytes (or packets, by) first, at most n
// (0: all).
func topFlows(flows map[segment.FlowKey]*segment.Flow, by string, n int) []*segment.Flow {
	rows := make([]*segment.Flow, 0, len(flows))
	for _, f := range flows {
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
		if a.Packets != b.Packets {
			return a.Packets > b.Packets
		}
		return a.First < b.First
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
	from, to   int64
	pl         *query.Plan
	dec        *zstd.Decoder
}

// flowAnswer is what a flowQuery found, and how.
type flowAnswer struct {
	flows              map[segment.FlowKey]*segment.Flow
	packets, fromIndex uint64
	frames             int      // frames read
	gapRead            bool     // why frames were read: seqs no segment covers (the open chunk, gaps)...
	cutRead            bool     // ...groups cut by the range's edges, or shared with flows that are
	refused            []string // segments not used, and why
	notes              []string // chunks read instead of indexed, and why
	damaged            []error  // what could not be read: the answer is incomplete
	repaired           []error  // damage from which every frame was recovered
}

func (a *flowAnswer) why() string {
	var w []string
	if a.cutRead {
		w = append(w, "groups the range cuts")
	}
	if a.gapRead {
		w = append(w, "seqs not indexed: the open chunk, gaps")
	}
	if len(w) == 0 {
		return "none needed"
	}
	return strings.Join(w, ", ")
}

func (a *flowAnswer) add(k *segment.FlowKey, pkts, bytes uint64, first, last int64, flags uint8) {
	a.packets += pkts
	m := a.flows[*k]
	if m == nil {
		a.flows[*k] = &segment.Flow{FlowKey: *k, Packets: pkts, Bytes: bytes, First: first, Last: last, Flags: flags}
		return
	}
	m.Packets += pkts
	m.Bytes += bytes
	m.First, m.Last = min(m.First, first), max(m.Last, last)
	m.Flags |= flags
}

// segUse is what the scan needs of a segment used: where its seqs are, and
// which of its groups and flows the index already counted.
type segUse struct {
	first, last uint64
	gsize       uint32
	gaps        [][2]uint64
	scan        []bool                       // per group: read it (nil: none)
	exact       map[segment.FlowKey]struct{} // flows counted from the flow table
}

// inSegment says whether seq (within first..last) was indexed: it is not
// in a gap.
func (u *segUse) inSegment(seq uint64) bool {
	for _, g := range u.gaps {
		if seq >= g[0] && seq <= g[1] {
			return false
		}
	}
	return true
}

// counted says whether the index counted the packet at seq (an indexed
// seq of the segment) of flow k: it did unless seq is in a group to read
// and k is not a flow the flow table answered for.
func (u *segUse) counted(seq uint64, k *segment.FlowKey) bool {
	g := seq/uint64(u.gsize) - u.first/uint64(u.gsize)
	if u.scan == nil || !u.scan[g] {
		return true // a group wholly inside or outside the range: the table's figures hold
	}
	_, ok := u.exact[*k]
	return ok
}

// run answers the query. A chunk whose frame table was lost (frames of
// unknown seqs) cannot be matched with the index by seq: the segments
// reaching into it are then set aside and its seqs read whole (a second
// pass, rarely needed).
func (fq *flowQuery) run() (*flowAnswer, error) {
	var exclude []query.SeqRange
	var notes []string
	for {
		ans, retry, err := fq.pass(exclude)
		if err != nil || retry == nil {
			if ans != nil {
				ans.notes = notes
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

func (fq *flowQuery) pass(exclude []query.SeqRange) (*flowAnswer, *retryChunk, error) {
	chunks, err := chunk.List(fq.store)
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
	ans := &flowAnswer{flows: map[segment.FlowKey]*segment.Flow{}}
	uses, pl := fq.useSegments(ans, exclude, stored)
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
	q := &sliceReq{store: fq.store, from: fq.from, to: fq.to, need: pl.Need, must: pl.Must}
	sk := &flowSink{fq: fq, ans: ans, uses: uses}
	res, err := sliceList(q, read, sk, fq.dec)
	if err != nil {
		return nil, nil, err
	}
	for _, in := range res.rebuilt {
		if coveredAny(pl.Covered, in.FirstSeq, in.LastSeq) {
			return nil, &retryChunk{query.SeqRange{Lo: in.FirstSeq, Hi: in.LastSeq}, in.Name, "its frame table was rebuilt"}, nil
		}
	}
	ans.frames = res.frames
	ans.damaged = append(ans.damaged, res.damaged...)
	ans.repaired = append(ans.repaired, res.repaired...)
	return ans, nil, nil
}

// flowSink counts the packets a flows query reads that the index did not
// count: those of seqs no segment used covers, and of flows the index could
// not answer for in the groups to read. Packets come in seq order.
type flowSink struct {
	fq   *flowQuery
	ans  *flowAnswer
	uses []*segUse
	ui   int // uses[ui] is the first segment that may hold the next seq
	p    segment.Packet
}

func (k *flowSink) write(ts int64, wireLen uint32, data []byte) error {
	return k.writeSeq(unknownSeq, ts, wireLen, data)
}

func (k *flowSink) writeSeq(seq uint64, ts int64, wireLen uint32, data []byte) error {
	query.DecodePacket(data, &k.p)
	key, flags, ok := segment.KeyOf(&k.p)
	if !ok || !k.fq.pl.MatchFlow(&key) {
		return nil
	}
	var u *segUse
	if seq != unknownSeq { // unknown: a chunk no segment used covers (else pass retries without them)
		for k.ui < len(k.uses) && k.uses[k.ui].last < seq {
			k.ui++
		}
		if k.ui < len(k.uses) && k.uses[k.ui].first <= seq {
			u = k.uses[k.ui]
		}
	}
	switch {
	case u == nil || !u.inSegment(seq):
		k.ans.gapRead = true
	case u.counted(seq, &key):
		return nil
	default:
		k.ans.cutRead = true
	}
	k.ans.add(&key, 1, uint64(wireLen), ts, ts, flags)
	return nil
}

// useSegments counts what the index answers exactly and returns the
// segments used (in seq order), and as a plan the seqs they cover and the
// groups to read.
func (fq *flowQuery) useSegments(ans *flowAnswer, exclude []query.SeqRange, stored uint64) ([]*segUse, *query.Index) {
	pl := &query.Index{}
	segs, _ := segment.List(fq.dir) // no index: everything is read
	// A segment reaching into seqs retention removed (left by a writer that
	// died between removing a chunk and its segments) would count packets
	// that are gone: it is not used, and what is still stored of its range
	// is read.
	gone, _ := fmstore.RemovedThrough(fq.store)
	var uses []*segUse
	var usedThrough uint64
	for _, e := range segs {
		if gone > 0 && e.First <= gone || len(uses) > 0 && e.First <= usedThrough || overlapsAny(exclude, e.First, e.Last) || e.Last > stored {
			continue // its seqs count as not indexed: read
		}
		u, err := fq.useSegment(ans, e)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing (retention, a rebuild): its seqs are read
		}
		if err != nil {
			ans.refused = append(ans.refused, err.Error())
			continue
		}
		uses = append(uses, u)
		usedThrough = e.Last
		at := u.first
		for _, g := range u.gaps {
			if g[0] > at {
				pl.Covered = append(pl.Covered, query.SeqRange{Lo: at, Hi: g[0] - 1})
			}
			at = g[1] + 1
		}
		if at <= u.last {
			pl.Covered = append(pl.Covered, query.SeqRange{Lo: at, Hi: u.last})
		}
		for g, read := range u.scan {
			if read {
				lo, hi := groupSeqs(u, g)
				pl.Candidate = query.AppendRange(pl.Candidate, lo, hi)
			}
		}
	}
	pl.Covered = query.Merge(pl.Covered)
	pl.Candidate = query.Merge(pl.Candidate)
	return uses, pl
}

func groupSeqs(u *segUse, g int) (lo, hi uint64) {
	G := uint64(u.gsize)
	lo = (u.first/G + uint64(g)) * G
	return max(lo, u.first), min(lo+G-1, u.last)
}

func overlapsAny(rs []query.SeqRange, lo, hi uint64) bool {
	for _, r := range rs {
		if r.Lo <= hi && lo <= r.Hi {
			return true
		}
	}
	return false
}

// useSegment opens segment e, adds to ans the flows its table answers for
// exactly in the range, and says which of its groups must be read for the
// rest. A segment found damaged adds nothing.
func (fq *flowQuery) useSegment(ans *flowAnswer, e segment.Entry) (*segUse, error) {
	s, err := segment.Open(fq.dir, e)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	u := &segUse{first: s.First, last: s.Last, gsize: s.GroupSize, gaps: s.Gaps}
	if s.Indexed == 0 || s.MaxTS < fq.from || s.MinTS >= fq.to {
		return u, nil // no packet of it is in the range
	}
	table, err := s.FlowTable()
	if err != nil {
		return nil, err
	}
	inside := s.MinTS >= fq.from && s.MaxTS < fq.to
	// Each group is inside the range, outside it, or cut by an edge.
	const (
		out = iota
		in
		cut
	)
	var cat []uint8
	if !inside {
		cat = make([]uint8, s.Groups())
		for g := range cat {
			lo, hi := s.GroupTimes(g)
			switch {
			case lo > hi || hi < fq.from || lo >= fq.to:
				cat[g] = out
			case lo >= fq.from && hi < fq.to:
				cat[g] = in
			default:
				cat[g] = cut
			}
		}
		if err := s.Err(); err != nil {
			return nil, err
		}
		u.scan = make([]bool, s.Groups()) // the groups of the flows that are not exact, below
	}
	var exact []*segment.Flow
	u.exact = map[segment.FlowKey]struct{}{}
	for i := range table {
		f := &table[i]
		if !fq.pl.MatchFlow(&f.FlowKey) {
			continue
		}
		all := true
		for _, g := range f.Groups {
			if cat != nil && cat[g] != in {
				all = false
				break
			}
		}
		if all {
			exact = append(exact, f)
			u.exact[f.FlowKey] = struct{}{}
			continue
		}
		// Its packets in the range are counted from its groups that
		// reach into the range.
		for _, g := range f.Groups {
			if cat[g] != out {
				u.scan[g] = true
			}
		}
	}
	for _, f := range exact {
		ans.add(&f.FlowKey, f.Packets, f.Bytes, f.First, f.Last, f.Flags)
		ans.fromIndex += f.Packets
	}
	return u, nil
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
