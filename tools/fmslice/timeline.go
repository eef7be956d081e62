package main

// fmslice timeline: packets and bytes per time bucket of a range, from the
// index where it answers (query/timeline.go says exactly where), from the
// frames elsewhere.
//
// Granularity: the index counts per group of 64 seqs, and a group it
// answers for counts whole in the bucket of its first packet's time. The
// totals over the range are tcpdump's exactly (groups the range's edges
// cut are read); a bucket is exact unless a group the index answered for
// straddles one of its edges, and then off by at most that group's
// packets. Groups it cannot answer for (packets outside flows, VLAN tags,
// a filter with src/dst or beyond the flow keys) are read and counted
// packet by packet in the bucket of each packet's time.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
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
)

const timelineGranularity = "index group (64 seqs): a group the index answers for counts whole in the bucket of its first packet; buckets are exact unless such a group straddles an edge, totals are exact"

var timelineCommand = &cli.Command{
	Name:  "timeline",
	Usage: "packets and bytes per time bucket, from the index (exact at index-group granularity), from the frames elsewhere",
	Description: "--step is a duration (1s, 500ms, 1m, 1h30m). Buckets start at --from (default: the store's first packet).\n" +
		"Granularity: " + timelineGranularity + ".\n" +
		"Groups cut by the range's edges, groups the flow counts cannot decide (packets outside flows, VLAN tags,\n" +
		"filters with src/dst or beyond host/net/port/protocol) and seqs no index segment with counts covers are read,\n" +
		"and each packet counted in its own bucket. Exit status 0 complete, 3 part of the range could not be read\n" +
		"(named on stderr), 1 any other error (a bad --step, a range outside the stored span, too many buckets).",
	ArgsUsage: "[tcpdump filter expression]",
	Flags: cliutil.Env("slice", append([]cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the store is its writer.store unless --store"},
		&cli.StringFlag{Name: "store", Usage: "store directory, or s3://BUCKET/PREFIX/NODE"},
		&cli.StringFlag{Name: "index", Usage: "index directory (default STORE/index)"},
		&cli.StringFlag{Name: "from", Usage: "start of the range (default: the first stored packet)"},
		&cli.StringFlag{Name: "to", Usage: "end of the range, exclusive (default: after the last stored packet)"},
		&cli.StringFlag{Name: "step", Usage: "bucket width, a duration: 1s, 100ms, 5m (required)"},
		&cli.BoolFlag{Name: "json", Usage: "JSON for programs"},
		&cli.BoolFlag{Name: "q", Aliases: []string{"quiet"}, Usage: "no summary on stderr"},
	}, cacheFlags()...), storeKey),
	Action: timeline,
}

// parseStep reads a bucket width: number+unit terms (ns, us, ms, s, m, h,
// d; fractions exact), at least 1 ns.
func parseStep(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("--step is required (e.g. --step 1s)")
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c >= 'a' && c <= 'z' || c == 'µ') {
			return 0, fmt.Errorf("--step %q: a duration such as 1s, 250ms, 5m, 1h30m", s)
		}
	}
	// timespec reads "-D" as now minus D: with now at 0, that is -D exactly.
	v, err := timespec.Parse("-"+s, time.Unix(0, 0))
	if err != nil {
		return 0, fmt.Errorf("--step %q: %w", s, err)
	}
	if v >= 0 || v == math.MinInt64 {
		return 0, fmt.Errorf("--step %q: must be at least 1ns", s)
	}
	return -v, nil
}

type timelineBucket struct {
	StartNS int64  `json:"start_ns"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

type timelineJSON struct {
	FromNS      int64            `json:"from_ns"`
	ToNS        int64            `json:"to_ns"`
	StepNS      int64            `json:"step_ns"`
	Filter      string           `json:"filter,omitempty"`
	Granularity string           `json:"granularity"`
	Packets     uint64           `json:"packets"`
	Bytes       uint64           `json:"bytes"`
	FromIndex   uint64           `json:"packets_from_index"`
	Read        uint64           `json:"packets_read"`
	GroupsIndex int              `json:"groups_from_index"`
	GroupsRead  int              `json:"groups_read"`
	Frames      int              `json:"frames_read"`
	Scanned     string           `json:"scanned"`
	Complete    bool             `json:"complete"`
	Buckets     []timelineBucket `json:"buckets"`
}

func timeline(cc *cli.Context) error {
	step, err := parseStep(cc.String("step"))
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
	// An s3:// store's segments for the range come into the cache first,
	// as for flows.
	store, dir, remote, err := storeArgs(cc, func(r *remoteStore) string { return r.indexDir(from, to) })
	if err != nil {
		return err
	}
	sp := span(store, remote)
	if !sp.ok {
		return fmt.Errorf("store %q holds no packets", store)
	}
	stamp := func(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }
	if to <= sp.first || from > sp.last {
		return fmt.Errorf("the range lies outside the stored span %s .. %s", stamp(sp.first), stamp(sp.last))
	}
	if cc.String("from") == "" {
		from = sp.first
	}
	if cc.String("to") == "" {
		to = sp.last + 1
	}
	tl, err := query.NewTimeline(from, to, step)
	if err != nil {
		return fmt.Errorf("--step %s over %s .. %s: %w", cc.String("step"), stamp(from), stamp(to), err)
	}
	expr := strings.TrimSpace(strings.Join(cc.Args().Slice(), " "))
	tq := &query.TimelineQuery{Store: store, Dir: dir, From: from, To: to}
	if remote != nil { // what bucket retention removed, from its records
		tq.Store = ""
		if tq.Through, err = removedThrough(store, remote); err != nil {
			return err
		}
	}
	var filter *bpf
	if expr != "" {
		if filter, err = compileBPF(expr, chunk.Snaplen); err != nil {
			return fmt.Errorf("filter %q: %w", expr, err)
		}
		if tq.Plan, tq.Exact = query.ParseExact(expr); !tq.Exact {
			tq.Plan = query.ParsePlan(expr)
		}
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	tl, err = runTimeline(tq, &storeRef{store, remote}, tl, filter, dec)
	if err != nil {
		return err
	}
	for _, r := range tl.Refused {
		fmt.Fprintf(os.Stderr, "fmslice: index segment refused, its range was read instead: %s\n", r)
	}
	for _, n := range tl.Notes {
		fmt.Fprintln(os.Stderr, "fmslice: note:", n)
	}
	for _, d := range tl.Repaired {
		fmt.Fprintln(os.Stderr, "fmslice: warning: damaged, repaired (every frame found):", d)
	}
	for _, d := range tl.Damaged {
		fmt.Fprintln(os.Stderr, "fmslice: damaged, not counted:", d)
	}
	retentionNotice(removedFrom(store, remote), from, tl.To())
	if remote == nil {
		fmstore.CountQuery(store)
	}
	var pk, by uint64
	for i := range tl.Packets {
		pk += tl.Packets[i]
		by += tl.Bytes[i]
	}
	if !cc.Bool("q") {
		fmt.Fprintf(os.Stderr, "fmslice timeline: %d packets, %d bytes in %d buckets of %s: %d counted by the index (%d groups answered), %d read from %d frames (%s)\n",
			pk, by, len(tl.Packets), time.Duration(step), tl.FromIndex, tl.GroupsIndex, tl.Read, tl.Frames, tl.Why())
	}
	if pk == 0 {
		emptyNotice(sp, from, to, expr != "")
	}
	if err := writeTimeline(tl, expr, cc.Bool("json")); err != nil {
		return err
	}
	if len(tl.Damaged) > 0 {
		return cli.Exit(fmt.Sprintf("timeline incomplete: %d damaged parts of the range were not counted (named above)", len(tl.Damaged)), exitIncomplete)
	}
	return nil
}

func writeTimeline(tl *query.Timeline, expr string, asJSON bool) error {
	if asJSON {
		out := timelineJSON{FromNS: tl.From, ToNS: tl.To(), StepNS: tl.Step, Filter: expr, Granularity: timelineGranularity,
			FromIndex: tl.FromIndex, Read: tl.Read, GroupsIndex: tl.GroupsIndex, GroupsRead: tl.GroupsRead, Frames: tl.Frames,
			Scanned: tl.Why(), Complete: len(tl.Damaged) == 0, Buckets: make([]timelineBucket, len(tl.Packets))}
		for i := range tl.Packets {
			out.Buckets[i] = timelineBucket{tl.From + int64(i)*tl.Step, tl.Packets[i], tl.Bytes[i]}
			out.Packets += tl.Packets[i]
			out.Bytes += tl.Bytes[i]
		}
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(out)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "START\tPACKETS\tBYTES\t")
	for i := range tl.Packets {
		fmt.Fprintf(w, "%s\t%d\t%d\t\n", time.Unix(0, tl.From+int64(i)*tl.Step).UTC().Format(time.RFC3339Nano), tl.Packets[i], tl.Bytes[i])
	}
	return w.Flush()
}

// runTimeline answers the query; like flows, a chunk whose frame table was
// lost cannot be matched with the index by seq, so the segments reaching
// into it are set aside and its seqs read whole (a second pass).
// storeRef is the store a query reads: a directory, or an object store
// (remote; store is then its s3:// URL).
type storeRef struct {
	store  string
	remote *remoteStore
}

func runTimeline(tq *query.TimelineQuery, st *storeRef, empty *query.Timeline, filter *bpf, dec *zstd.Decoder) (*query.Timeline, error) {
	var exclude []query.SeqRange
	var notes []string
	for {
		tl, err := query.NewTimeline(empty.From, empty.To(), empty.Step)
		if err != nil {
			return nil, err
		}
		retry, err := timelinePass(tq, st, tl, filter, exclude, dec)
		if err != nil {
			return nil, err
		}
		if retry == nil {
			tl.Notes = append(tl.Notes, notes...)
			return tl, nil
		}
		exclude = append(exclude, retry.seqs)
		notes = append(notes, fmt.Sprintf("chunk %q: %s: the index cannot be matched with its frames, so its seqs were read instead", retry.name, retry.why))
	}
}

func timelinePass(tq *query.TimelineQuery, st *storeRef, tl *query.Timeline, filter *bpf, exclude []query.SeqRange, dec *zstd.Decoder) (*retryChunk, error) {
	chunks, err := listChunks(st.store, st.remote)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("store %q holds no chunks (is the writer running, and is this its --store?)", st.store)
	}
	var stored uint64
	for _, in := range chunks {
		if !in.Open {
			stored = max(stored, in.LastSeq)
		} else if fr := openFrames(st.store, in); len(fr) > 0 {
			stored = max(stored, fr[len(fr)-1].LastSeq)
		}
	}
	pl := tq.UseSegments(tl, exclude, stored)
	var read []chunk.Info
	for _, in := range chunks {
		if in.Overlaps(tq.From, tq.To) && pl.Need(in.FirstSeq, in.LastSeq) {
			read = append(read, in)
			if !pl.Covers(in.FirstSeq, in.LastSeq) {
				tl.GapRead = true
			}
		}
	}
	if len(read) == 0 {
		return nil, nil
	}
	q := &sliceReq{store: st.store, remote: st.remote, from: tq.From, to: tq.To, filter: filter, need: pl.Need, must: pl.Must}
	res, err := sliceList(q, read, &timelineSink{tl}, dec)
	if err != nil {
		return nil, err
	}
	for _, in := range res.rebuilt {
		if coveredAny(pl.Covered, in.FirstSeq, in.LastSeq) {
			return &retryChunk{query.SeqRange{Lo: in.FirstSeq, Hi: in.LastSeq}, in.Name, "its frame table was rebuilt"}, nil
		}
	}
	tl.Frames = res.frames
	tl.Damaged = append(tl.Damaged, res.damaged...)
	tl.Repaired = append(tl.Repaired, res.repaired...)
	return nil, nil
}

// timelineSink counts each packet read (fmslice's pipeline hands it only
// those in the range, among the groups to read, matching the filter).
type timelineSink struct{ tl *query.Timeline }

func (k *timelineSink) write(ts int64, wireLen uint32, data []byte) error {
	if k.tl.Add(ts, 1, uint64(wireLen)) {
		k.tl.Read++
	}
	return nil
}
