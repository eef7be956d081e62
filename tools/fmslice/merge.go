package main

// One query over several nodes' stores: --store A,B,C (local directories
// or s3:// prefixes, in any mix). Each store is sliced as alone, all at
// once, and the packets are merged by capture time as mergecap merges
// files: the earliest packet next, a tie to the store given first; within
// a store packets keep their order (seq). Memory is bounded: each store
// hands over packets in batches through a channel of a few batches. In
// pcapng each store's packets come on interfaces of their own, named by the
// store's node (output.go).

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/query"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

// splitStores reads --store: several stores are separated by commas.
func splitStores(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

type mpkt struct {
	ts    int64
	wire  uint32
	data  []byte
	known bool // pm holds the packet's stored metadata
	pm    chunk.PacketMeta
}

// batchSink hands a store's packets to the merge, copied into batches.
type batchSink struct {
	ch    chan []mpkt
	quit  chan struct{}
	batch []mpkt
	arena []byte
}

const mergeBatch = 512

func (s *batchSink) write(ts int64, wire uint32, data []byte) error {
	return s.writeMeta(ts, wire, data, nil, false)
}

func (s *batchSink) writeMeta(ts int64, wire uint32, data []byte, pm *chunk.PacketMeta, known bool) error {
	if s.batch == nil {
		s.batch = make([]mpkt, 0, mergeBatch)
		s.arena = make([]byte, 0, mergeBatch*256)
	}
	if len(s.arena)+len(data) > cap(s.arena) { // never moves earlier packets' bytes
		s.arena = make([]byte, 0, max(mergeBatch*256, len(data)))
	}
	s.arena = append(s.arena, data...)
	p := mpkt{ts: ts, wire: wire, data: s.arena[len(s.arena)-len(data):], known: known}
	if known {
		p.pm = *pm
	}
	s.batch = append(s.batch, p)
	if len(s.batch) == mergeBatch {
		return s.send()
	}
	return nil
}

func (s *batchSink) send() error {
	if len(s.batch) == 0 {
		return nil
	}
	select {
	case s.ch <- s.batch:
	case <-s.quit:
		return fmt.Errorf("merge stopped")
	}
	s.batch, s.arena = nil, nil
	return nil
}

// runMerged answers a slice over several stores.
func runMerged(cc *cli.Context, stores []string) error {
	format := cc.String("format")
	if format != "pcap" && format != "pcapng" {
		return fmt.Errorf("--format %q: use pcap or pcapng", format)
	}
	type node struct {
		q    *sliceReq
		pl   *query.Index
		sink *batchSink
		res  *result
		err  error
		done chan struct{}
	}
	var nodes []*node
	quit := make(chan struct{})
	defer close(quit)
	for _, st := range stores {
		if err := cc.Set("store", st); err != nil {
			return err
		}
		q, pl, err := newSliceReq(cc, format == "pcapng")
		if err != nil {
			return fmt.Errorf("store %s: %w", st, err)
		}
		nodes = append(nodes, &node{q: q, pl: pl, sink: &batchSink{ch: make(chan []mpkt, 4), quit: quit}, done: make(chan struct{})})
	}
	w, closeOut, err := sliceOutput(cc.String("w"))
	if err != nil {
		return err
	}
	defer closeOut()
	var out interface {
		sink
		flush() error
	}
	var ng *ngSink
	if format == "pcap" {
		out, err = newPcapSink(w)
	} else {
		ng, err = newNgSink(w, nil) // no port names: interfaces by port number (and tunnel)
		out = ng
	}
	if err != nil {
		return err
	}
	if ng != nil {
		ng.nodes = nodeNames(stores)
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	for _, n := range nodes {
		go func() {
			defer close(n.done)
			defer close(n.sink.ch)
			n.res, n.err = slice(n.q, n.sink, dec)
			if n.err == nil {
				n.err = n.sink.send()
			}
		}()
	}
	// The merge: heads[i] is store i's next batch, at[i] the packet in it.
	heads := make([][]mpkt, len(nodes))
	at := make([]int, len(nodes))
	next := func(i int) {
		at[i]++
		for at[i] >= len(heads[i]) {
			b, ok := <-nodes[i].sink.ch
			if !ok {
				heads[i] = nil
				return
			}
			heads[i], at[i] = b, 0
		}
	}
	for i := range nodes {
		at[i] = -1
		next(i)
	}
	var werr error
	for werr == nil {
		best := -1
		for i, h := range heads {
			if h != nil && (best < 0 || h[at[i]].ts < heads[best][at[best]].ts) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		p := &heads[best][at[best]]
		if ng != nil {
			ng.node = best
			werr = ng.writeMeta(p.ts, p.wire, p.data, &p.pm, p.known)
		} else {
			werr = out.write(p.ts, p.wire, p.data)
		}
		next(best)
	}
	if werr != nil {
		return fmt.Errorf("write output: %w", werr)
	}
	damaged := 0
	for i, n := range nodes {
		<-n.done
		if n.err != nil {
			return fmt.Errorf("store %s: %w", stores[i], n.err)
		}
	}
	if err := out.flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	for i, n := range nodes {
		if !cc.Bool("q") || len(n.res.damaged) > 0 {
			fmt.Fprintf(os.Stderr, "fmslice: store %s:\n", stores[i])
		}
		n.res.report(n.q, n.pl, cc.Bool("q"), cc.Bool("explain"))
		if n.q.remote == nil {
			fmstore.CountQuery(n.q.store)
		} else if cc.Bool("explain") {
			n.q.remote.transferNotice()
		}
		damaged += len(n.res.damaged)
	}
	if damaged > 0 {
		return cli.Exit(fmt.Sprintf("output incomplete: %d damaged parts skipped", damaged), exitIncomplete)
	}
	return nil
}

// flowsMerged is fmslice flows over several stores (nodes, local or
// s3://): each store is counted as alone (its summary on stderr under its
// name), and the flows are added up by their key, so that a flow seen by
// several nodes is one row with every node's packets and bytes, its first
// and last times across them and every TCP flag any saw.
func flowsMerged(cc *cli.Context, stores []string) error {
	if cc.String("index") != "" || cc.Bool("by-origin") {
		return fmt.Errorf("--index and --by-origin read one store; with several (--store A,B) each store's own index is used")
	}
	fa, err := parseFlowArgs(cc)
	if err != nil {
		return err
	}
	remotes, err := openStores(cc, stores)
	if err != nil {
		return err
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	total := query.NewFlowAnswer()
	for i, st := range stores {
		fq := &flowQuery{store: st, remote: remotes[i], dir: fmstore.Index(st), from: fa.from, to: fa.to, pl: fa.pl, dec: dec}
		if fq.remote != nil {
			fq.dir = fq.remote.indexDir(fa.from, fa.to)
		}
		ans, err := fq.run()
		if err != nil {
			return fmt.Errorf("store %s: %w", st, err)
		}
		if !cc.Bool("q") {
			fmt.Fprintf(os.Stderr, "fmslice: store %s:\n", st)
		}
		fq.report(ans, fa.expr, cc.Bool("q"))
		addFlows(total, ans)
	}
	return answerFlows(cc, total, fa.by)
}

// openStores opens (s3://, listed) or checks (a directory) every store
// before any is read, so that a bad one late in the list stops the command
// before it reports anything.
func openStores(cc *cli.Context, stores []string) ([]*remoteStore, error) {
	remotes := make([]*remoteStore, len(stores))
	for i, st := range stores {
		r, err := openStore(cc, st)
		if err != nil {
			return nil, err
		}
		remotes[i] = r
	}
	return remotes, nil
}

// addFlows adds a store's answer to the total.
func addFlows(total, a *query.FlowAnswer) {
	for k, f := range a.Flows {
		t, ok := total.Flows[k]
		if !ok {
			total.Flows[k] = f
			continue
		}
		t.Packets += f.Packets
		t.Bytes += f.Bytes
		t.First, t.Last = min(t.First, f.First), max(t.Last, f.Last)
		t.Flags |= f.Flags
	}
	total.Packets += a.Packets
	total.FromIndex += a.FromIndex
	total.Frames += a.Frames
	total.Damaged = append(total.Damaged, a.Damaged...)
}

// nodeNames is what a merged pcapng calls the stores' nodes: the node of
// an s3:// store (its last path element: s3://BUCKET/PREFIX/NODE), the
// path of a local one as given; where two s3:// stores share a node name
// (two buckets or prefixes), each is called by its whole location.
func nodeNames(stores []string) []string {
	names := make([]string, len(stores))
	seen := map[string]int{}
	for i, st := range stores {
		names[i] = st
		if rest, ok := strings.CutPrefix(st, "s3://"); ok {
			rest = strings.TrimRight(rest, "/")
			names[i] = rest[strings.LastIndexByte(rest, '/')+1:]
		}
		seen[names[i]]++
	}
	for i, st := range stores {
		if seen[names[i]] > 1 {
			names[i] = st
		}
	}
	return names
}

// localOnly refuses, for fmslice timeline, what it cannot read yet: an
// object store, and several stores.
func localOnly(cmd, store string) error {
	if strings.Contains(store, ",") || strings.HasPrefix(store, "s3://") {
		return fmt.Errorf("fmslice %s reads one local store; --store %s: slice it instead (fmslice --store %s -w FILE), or run %s on each node's store", cmd, store, store, cmd)
	}
	return nil
}
