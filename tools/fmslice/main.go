// Command fmslice extracts a time range of a store, optionally filtered by a
// tcpdump expression, as pcap (or pcapng) that tcpdump and Wireshark read.
//
// Exit status (exitHelp): 0 when the output holds every stored packet of
// the range, including when retention removed part of the range (a notice
// on stderr names it) and when a damaged chunk table was rebuilt with
// every frame found (a warning); 3 when packets of the range are missing
// (each damaged frame or chunk is named on stderr and the rest is still
// extracted), and for fmslice flows when its answer is incomplete; 1 on
// any other error (bad arguments, missing or empty store, unwritable
// output).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/internal/progress"
	"github.com/fmcap/fmcap/internal/timespec"
	"github.com/fmcap/fmcap/internal/version"
	"github.com/fmcap/fmcap/query"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

const exitIncomplete = 3

// The store is the writer's: FMCAP_SLICE_STORE, else FMCAP_WRITER_STORE.
var storeKey = map[string]string{"store": "writer.store"}

const exitHelp = "Exit status: 0 complete (also when retention removed part of the range: a notice on stderr says which;\n" +
	"and when a damaged chunk table was rebuilt and every packet recovered: a warning); 3 packets of the range are\n" +
	"missing (damaged frames or chunks, each named on stderr; the rest is output), or flows could not count all of\n" +
	"the range; 1 any other error."

func main() {
	// A query lives for milliseconds with a heap of a few MiB (frame buffers,
	// the plan): collecting at 4 MiB as Go does by default cost a 50 M-packet
	// query about 5 ms of 55 (bench/RESULTS.md). Let it grow to five times
	// what is live instead.
	debug.SetGCPercent(400)
	fsmode.SetUmask()        // queries.log in the store, and -w output, 0640: captures are not for every local user
	s3Elsewhere(os.Args[1:]) // a build without the S3 client runs fmslice-s3 for s3:// stores (store_nos3.go)
	// --server: the same commands against a remote fmcapd (remote.go).
	if code, ok := remoteMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	app := &cli.App{
		Name:      "fmslice",
		Usage:     "extract packets from an fmcap store as pcap",
		ArgsUsage: "[tcpdump filter expression]",
		Description: "The range is half-open: --from <= time < --to. Times: RFC 3339 (2026-11-25T10:00:00.5Z),\n" +
			"Unix seconds (1764064800.5), now, or relative (-5m, now-1h). The filter has tcpdump's syntax and meaning.\n" + exitHelp,
		Flags: cliutil.Env("slice", append([]cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the store is its writer.store unless --store"},
			&cli.StringFlag{Name: "store", Usage: "store directory written by the writer, or s3://BUCKET/PREFIX/NODE (uploaded by fmupload); several, comma-separated, are merged by time (required)"},
			&cli.StringFlag{Name: "from", Usage: "start of the range (inclusive); default: the beginning"},
			&cli.StringFlag{Name: "to", Usage: "end of the range (exclusive); default: the end"},
			&cli.StringFlag{Name: "w", Aliases: []string{"write"}, Value: "-", Usage: "output file, - for stdout"},
			&cli.StringFlag{Name: "format", Value: "pcap", Usage: "pcap (nanosecond) or pcapng"},
			&cli.BoolFlag{Name: "q", Aliases: []string{"quiet"}, Usage: "no summary or progress on stderr"},
			&cli.StringFlag{Name: "index", Usage: "index directory (default STORE/index, when there is one)"},
			&cli.BoolFlag{Name: "no-index", Usage: "read every frame of the range (compare with the indexed answer)"},
			&cli.BoolFlag{Name: "explain", Usage: "print the plan on stderr: segments consulted, frames read and skipped, bytes decompressed"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to this file (for benchmarks)"},
		}, append(cacheFlags(), originFlags()...)...), storeKey), // selection by origin: origin.go
		Commands: []*cli.Command{{
			Name:  "flows",
			Usage: "the flows of exactly a range, top talkers first: from the index where it is exact, from the frames elsewhere",
			Description: "Packets and bytes are tcpdump's for the same range: flows whose index groups lie wholly inside the\n" +
				"range are counted by the index; groups cut by the range's edges, the open chunk and seqs no valid index\n" +
				"segment covers are read. Exit status 3 when part of the range could not be read (named on stderr).",
			ArgsUsage: "[filter: host, net, port, portrange, protocols, and/or/not]",
			Flags: cliutil.Env("slice", append([]cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the store is its writer.store unless --store"},
				&cli.StringFlag{Name: "store", Usage: "store directory, or s3://BUCKET/PREFIX/NODE; several, comma-separated, are added up"},
				&cli.StringFlag{Name: "index", Usage: "index directory (default STORE/index)"},
				&cli.StringFlag{Name: "from", Usage: "start of the range"},
				&cli.StringFlag{Name: "to", Usage: "end of the range"},
				&cli.StringFlag{Name: "by", Value: "bytes", Usage: "order by bytes or packets"},
				&cli.IntFlag{Name: "n", Value: 20, Usage: "rows (0: all)"},
				&cli.BoolFlag{Name: "json", Usage: "JSON for programs"},
				&cli.BoolFlag{Name: "q", Aliases: []string{"quiet"}, Usage: "no summary on stderr"},
				&cli.BoolFlag{Name: "by-origin", Usage: "split flows by capture port, direction and tunnel (from the index's flow origins where it answers, from the frames' metadata elsewhere)"},
			}, cacheFlags()...), storeKey),
			Action: flows,
		}, {
			Name:  "info",
			Usage: "what a store holds: time span, packets, pcap and stored bytes, chunks, index coverage, retention removals",
			Flags: cliutil.Env("slice", append([]cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the store is its writer.store unless --store"},
				&cli.StringFlag{Name: "store", Usage: "store directory, or s3://BUCKET/PREFIX/NODE; several, comma-separated, each and their total"},
				&cli.StringFlag{Name: "index", Usage: "index directory (default STORE/index)"},
				&cli.BoolFlag{Name: "json", Usage: "JSON for programs"},
			}, cacheFlags()...), storeKey),
			Action: info,
		}, timelineCommand},
		Action:         run,
		ExitErrHandler: func(*cli.Context, error) {}, // main reports and exits
	}
	version.Setup(app)
	if err := app.Run(cliutil.FlagsFirst(app, os.Args)); err != nil { // flags after the filter too
		fmt.Fprintln(os.Stderr, "fmslice:", err)
		var ex cli.ExitCoder
		if errors.As(err, &ex) {
			os.Exit(ex.ExitCode())
		}
		os.Exit(1)
	}
}

// cacheFlags are the object store's cache, for the commands that read
// s3:// stores (store.go).
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache", Usage: "s3:// stores: local cache of index segments and chunk tables (default ~/.cache/fmcap/objstore)"},
		&cli.StringFlag{Name: "cache-bytes", Usage: "s3:// stores: bound of the cache in bytes (default 2 GiB)"},
	}
}

func run(cc *cli.Context) error {
	if err := cliutil.FromConfig(cc, "store", "writer", "store"); err != nil {
		return err
	}
	if cc.String("store") == "" {
		return fmt.Errorf("--store DIR is required (or writer.store in --config)")
	}
	if stores := splitStores(cc.String("store")); len(stores) > 1 {
		return runMerged(cc, stores) // merge.go: several nodes' stores
	}
	stopProfile, err := cliutil.CPUProfile(cc.String("cpuprofile"))
	if err != nil {
		return err
	}
	defer stopProfile()
	format := cc.String("format")
	if format != "pcap" && format != "pcapng" {
		return fmt.Errorf("--format %q: use pcap or pcapng", format)
	}
	q, pl, err := newSliceReq(cc, format == "pcapng")
	if err != nil {
		return err
	}
	w, closeOut, err := sliceOutput(cc.String("w"))
	if err != nil {
		return err
	}
	defer closeOut()
	var meter *progress.Meter // drawn only for -w FILE: stdout is for the pcap
	if cc.String("w") != "-" {
		meter = sliceMeter(q, cc.Bool("q"))
	}
	var out interface {
		sink
		flush() error
	}
	if format == "pcap" {
		out, err = newPcapSink(w)
	} else {
		out, err = newNgSink(w, q.ports)
	}
	if err != nil {
		return err
	}
	var mg *matchGroups
	if cc.Bool("explain") {
		mg = &matchGroups{out: out, last: unknownSeq}
		out = mg
	}
	_, q.runs = out.(*pcapSink)
	dec := chunk.NewDecoder()
	defer dec.Close()
	res, err := slice(q, out, dec)
	meter.Done()
	if err != nil {
		return err
	}
	if q.remote == nil {
		fmstore.CountQuery(q.store)
	}
	if err := out.flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	res.matchGroups = mg
	res.report(q, pl, cc.Bool("q"), cc.Bool("explain"))
	originNotice(q, os.Stderr)
	if q.remote != nil && cc.Bool("explain") {
		q.remote.transferNotice()
	}
	if len(res.damaged) > 0 {
		return cli.Exit(fmt.Sprintf("output incomplete: %d damaged parts skipped", len(res.damaged)), exitIncomplete)
	}
	return nil
}

// retentionNotice says on stderr which part of [from, to) retention removed
// (gone, from the store's retention log), if any.
func retentionNotice(gone []fmstore.Removed, from, to int64) {
	var n int
	var lo, hi int64
	var first, last uint64
	for _, r := range gone {
		if r.MaxTS >= from && r.MinTS < to {
			if n == 0 || r.MinTS < lo {
				lo, first = r.MinTS, r.FirstSeq
			}
			if n == 0 || r.MaxTS > hi {
				hi, last = r.MaxTS, r.LastSeq
			}
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(os.Stderr, "fmslice: part of this range was removed by retention: %d chunks, packets from %s to %s (seq %d..%d) are no longer stored\n",
			n, time.Unix(0, lo).UTC().Format(time.RFC3339Nano), time.Unix(0, hi).UTC().Format(time.RFC3339Nano), first, last)
	}
}

// newSliceReq reads the range, the filter and the origin selection
// (pcapng: the output names interfaces by origin), and consults the index
// (unless --no-index): pl is nil when the index has nothing to say.
func newSliceReq(cc *cli.Context, pcapng bool) (q *sliceReq, pl *query.Index, err error) {
	q = &sliceReq{store: cc.String("store")}
	if q.from, q.to, err = timespec.Range(cc.String("from"), cc.String("to")); err != nil {
		return nil, nil, err
	}
	if q.remote, err = openRemote(cc, q.store); err != nil {
		return nil, nil, err
	}
	if q.from == q.to {
		return nil, nil, timespec.EmptyRange(cc.String("from"), cc.String("to"))
	}
	if err := setupOrigin(cc, q, pcapng); err != nil { // origin.go
		return nil, nil, err
	}
	expr := strings.TrimSpace(strings.Join(cc.Args().Slice(), " "))
	if expr != "" {
		if q.filter, err = compileBPF(expr, chunk.Snaplen); err != nil {
			return nil, nil, fmt.Errorf("filter %q: %w", expr, err)
		}
	}
	if (expr != "" || q.sel != nil) && !cc.Bool("no-index") {
		dir := cc.String("index")
		if dir == "" && q.remote != nil {
			dir = q.remote.indexDir(q.from, q.to)
		} else if dir == "" {
			dir = fmstore.Index(q.store)
		}
		refused := func(err error) {
			fmt.Fprintf(os.Stderr, "fmslice: index segment refused, its range is scanned instead: %v\n", err)
		}
		if pl = query.LoadIndex(dir, expr, q.sel.origins(), q.from, q.to, refused); pl != nil {
			q.need, q.must = pl.Need, pl.Must
		}
	}
	return q, pl, nil
}

// report tells stderr what the slice rests on: damaged and repaired parts,
// retention's removals, the counts (unless quiet), why nothing matched, and
// with explainPlan what the index saved.
func (res *result) report(q *sliceReq, pl *query.Index, quiet, explainPlan bool) {
	for _, d := range res.damaged {
		fmt.Fprintln(os.Stderr, "fmslice: damaged, skipped:", d)
	}
	for _, d := range res.repaired {
		fmt.Fprintln(os.Stderr, "fmslice: warning: damaged, repaired (every frame found):", d)
	}
	// Retention removed part of the range: say which, always (even -q).
	retentionNotice(removedFrom(q.store, q.remote), q.from, q.to)
	if !quiet {
		fmt.Fprintf(os.Stderr, "fmslice: %d packets from %d frames in %d chunks (%d bytes decompressed)\n",
			res.packets, res.frames, res.chunks, res.decompressed)
	}
	if res.packets == 0 {
		emptyNotice(span(q.store, q.remote), q.from, q.to, q.filter != nil)
	}
	if explainPlan {
		if pl != nil {
			explain(pl, os.Stderr, res)
		} else {
			fmt.Fprintf(os.Stderr, "plan: no index used (no filter the index can answer, or no segments): %d frames read\n", res.frames)
		}
	}
}

// matchGroups passes the output on and counts the index groups (64 seqs)
// holding a packet that matched, for --explain: the plan's precision is
// groups kept against these.
type matchGroups struct {
	out interface {
		sink
		flush() error
	}
	last uint64 // the group of the last match, unknownSeq: none
	n    int
}

func (m *matchGroups) write(ts int64, wireLen uint32, data []byte) error {
	return m.out.write(ts, wireLen, data)
}

func (m *matchGroups) writeSeq(seq uint64, ts int64, wireLen uint32, data []byte) error {
	if seq != unknownSeq {
		if g := seq / segment.DefaultGroupSize; g != m.last {
			m.last = g
			m.n++
		}
	}
	return m.out.write(ts, wireLen, data)
}

func (m *matchGroups) flush() error { return m.out.flush() }

func (m *matchGroups) count() int {
	if m == nil {
		return 0
	}
	return m.n
}

// explain prints, for --explain, what the index saved.
func explain(p *query.Index, w io.Writer, res *result) {
	total := res.frames + res.skipped
	frac := 0.0
	if total > 0 {
		frac = float64(res.skipped) / float64(total)
	}
	fmt.Fprintf(w, "plan: %d index segments consulted, %d refused; %d of %d seq groups may match\n", p.Segs, len(p.Refused), p.Kept, p.Groups)
	fmt.Fprintf(w, "plan: groups kept %d (term lists alone: %d; flow tables narrowed %d segments); groups that held a match %d; frames read %d; frames that held a match %d\n",
		p.Kept, p.TermKept, p.FlowSegs, res.matchGroups.count(), res.frames, res.matchFrames)
	fmt.Fprintf(w, "plan: %d frames read, %d skipped of %d in the range (%.1f%% skipped), %d bytes decompressed\n",
		res.frames, res.skipped, total, 100*frac, res.decompressed)
}
