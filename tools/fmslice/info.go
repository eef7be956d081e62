package main

// fmslice info: what a store holds. The span and packet counts come from
// the chunks' names (finished chunks) and frame tables (the chunk being
// written, and pcap bytes); index coverage from the segments' headers;
// removals from STORE/retention.log and the bucket's retention records
// (store.Removals). Nothing is decompressed. An s3:// store is read
// through its Backend: the listing (chunks and their sizes), each chunk's
// tables and every segment fetched once into the cache, so its answer is
// the local store's over the same chunks.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/progress"
	"github.com/fmcap/fmcap/query"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// storeInfo is fmslice info's answer (also its JSON).
type storeInfo struct {
	Store string `json:"store"`
	// First and Last are the earliest and latest capture times stored
	// (absent for a store without packets).
	First   *time.Time `json:"first,omitempty"`
	Last    *time.Time `json:"last,omitempty"`
	FirstNS int64      `json:"first_ns"`
	LastNS  int64      `json:"last_ns"`
	// FirstSeq..LastSeq are the seqs stored.
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Packets  uint64 `json:"packets"`
	// PcapBytes is the size of the whole store as one pcap file (what
	// fmslice -w writes for it): a 24-byte header and each packet's
	// record. StoredBytes is what the chunks take on disk.
	PcapBytes   uint64  `json:"pcap_bytes"`
	StoredBytes uint64  `json:"stored_bytes"`
	Ratio       float64 `json:"ratio"`
	Chunks      int     `json:"chunks"`
	OpenChunk   bool    `json:"open_chunk"`
	// Damaged names chunks whose tables had to be rebuilt or could not be read.
	Damaged []string  `json:"damaged,omitempty"`
	Index   indexInfo `json:"index"`
	Removed removals  `json:"retention"`
	// total: the sum over several stores (seqs are each store's own, so
	// it has none).
	total bool
}

type indexInfo struct {
	Segments int    `json:"segments"`
	Refused  int    `json:"refused"` // fail their checks: queries read their range instead
	Bytes    uint64 `json:"bytes"`
	Packets  uint64 `json:"packets"` // stored packets the index covers
	// Gaps are stored seq ranges no valid segment covers (not indexed
	// yet, missed by the live indexer, or refused segments): queries read
	// them; indexer --rebuild indexes them.
	Gaps       [][2]uint64 `json:"gaps,omitempty"`
	GapPackets uint64      `json:"gap_packets"`
}

type removals struct {
	Chunks  int            `json:"chunks"`
	Packets uint64         `json:"packets"`
	First   *time.Time     `json:"first,omitempty"` // earliest capture time removed
	Last    *time.Time     `json:"last,omitempty"`  // latest capture time removed
	Reasons map[string]int `json:"reasons,omitempty"`
	LastAt  *time.Time     `json:"last_removal,omitempty"`
}

func info(cc *cli.Context) error {
	if stores := splitStores(cc.String("store")); len(stores) > 1 {
		return infoMerged(cc, stores)
	}
	store, dir, remote, err := storeArgs(cc, func(r *remoteStore) string { return r.syncIndex(nil) })
	if err != nil {
		return err
	}
	si, err := readStoreInfo(store, dir, remote)
	if err != nil {
		return err
	}
	if cc.Bool("json") {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(si)
	}
	si.print(os.Stdout)
	return nil
}

// infoMerged is fmslice info over several stores (nodes, local or
// s3://): each store's answer, then their total (JSON: {"stores": [...],
// "total": ...}).
func infoMerged(cc *cli.Context, stores []string) error {
	if cc.String("index") != "" {
		return fmt.Errorf("--index reads one store; with several (--store A,B) each store's own index is used")
	}
	remotes, err := openStores(cc, stores)
	if err != nil {
		return err
	}
	var all []*storeInfo
	t := &storeInfo{Store: strings.Join(stores, ","), total: true}
	for i, st := range stores {
		dir := fmstore.Index(st)
		if remotes[i] != nil {
			dir = remotes[i].syncIndex(nil)
		}
		si, err := readStoreInfo(st, dir, remotes[i])
		if err != nil {
			return fmt.Errorf("store %s: %w", st, err)
		}
		all = append(all, si)
		if si.First != nil && (t.First == nil || si.FirstNS < t.FirstNS) {
			t.First, t.FirstNS = si.First, si.FirstNS
		}
		if si.Last != nil && (t.Last == nil || si.LastNS > t.LastNS) {
			t.Last, t.LastNS = si.Last, si.LastNS
		}
		t.Packets += si.Packets
		t.PcapBytes += si.PcapBytes
		t.StoredBytes += si.StoredBytes
		t.Chunks += si.Chunks
		t.OpenChunk = t.OpenChunk || si.OpenChunk
		for _, d := range si.Damaged {
			t.Damaged = append(t.Damaged, st+": "+d)
		}
		t.Index.Segments += si.Index.Segments
		t.Index.Refused += si.Index.Refused
		t.Index.Bytes += si.Index.Bytes
		t.Index.Packets += si.Index.Packets
		t.Index.GapPackets += si.Index.GapPackets
		t.Removed.Chunks += si.Removed.Chunks
		t.Removed.Packets += si.Removed.Packets
	}
	if t.StoredBytes > 0 {
		t.Ratio = float64(t.PcapBytes) / float64(t.StoredBytes)
	}
	if cc.Bool("json") {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		// The total has no seqs: each store numbers its own.
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		var total map[string]any
		json.Unmarshal(b, &total)
		delete(total, "first_seq")
		delete(total, "last_seq")
		return e.Encode(struct {
			Stores []*storeInfo   `json:"stores"`
			Total  map[string]any `json:"total"`
		}{all, total})
	}
	for _, si := range all {
		si.print(os.Stdout)
		fmt.Println()
	}
	t.print(os.Stdout)
	return nil
}

func tp(ns int64) *time.Time { t := time.Unix(0, ns).UTC(); return &t }

// storeSpan is the capture times and seqs a store's chunks hold, from
// their names and (for the open chunk) its frame table; ok is false for a
// store without packets.
type storeSpan struct {
	first, last       int64
	firstSeq, lastSeq uint64
	ok                bool
}

func (sp *storeSpan) add(minTS, maxTS int64, lo, hi uint64) {
	if !sp.ok {
		*sp = storeSpan{minTS, maxTS, lo, hi, true}
		return
	}
	sp.first, sp.last = min(sp.first, minTS), max(sp.last, maxTS)
	sp.firstSeq, sp.lastSeq = min(sp.firstSeq, lo), max(sp.lastSeq, hi)
}

// openFrames is the frames of the open chunk in (those whose bytes are
// written), or nil. Only a local store has an open chunk.
func openFrames(store string, in chunk.Info) []chunk.Frame {
	rd, err := chunk.OpenReader(store, in, nil)
	if err != nil {
		return nil // published or removed meanwhile: the next listing has it
	}
	defer rd.Close()
	return rd.Table.Frames
}

// span reads a store's span cheaply: chunk names, and the open chunk's
// frame table.
func span(store string, r *remoteStore) storeSpan {
	var sp storeSpan
	list, _ := listChunks(store, r)
	for _, in := range list {
		if !in.Open {
			sp.add(in.MinTS, in.MaxTS, in.FirstSeq, in.LastSeq)
			continue
		}
		for _, f := range openFrames(store, in) {
			sp.add(f.MinTS, f.MaxTS, f.FirstSeq, f.LastSeq)
		}
	}
	return sp
}

func readStoreInfo(store, dir string, r *remoteStore) (*storeInfo, error) {
	// A live store changes under the listing: the writer seals the open
	// chunk (a new name) and retention removes the oldest. A chunk gone
	// between the listing and its reading is not damage, and its packets
	// are under another name: the store is listed again.
	for try := 1; ; try++ {
		si, changed, err := readStoreInfoOnce(store, dir, r)
		if !changed {
			return si, err
		}
		if try == 5 {
			return nil, fmt.Errorf("store %q: a chunk was sealed or removed while each of 5 listings was read; try again", store)
		}
	}
}

// gone says whether a listed chunk's file is no longer there.
func gone(b fmstore.Backend, in chunk.Info) bool {
	_, err := b.Stat(context.Background(), in.Name)
	return errors.Is(err, fs.ErrNotExist)
}

// chunkBytes is what chunk in's files take in the store: on disk, or in
// the object store as it listed them.
func chunkBytes(store string, r *remoteStore, in chunk.Info) uint64 {
	if r == nil {
		return in.Size(store)
	}
	var n int64
	for _, f := range in.Files() {
		n += r.b.ListedSize(f)
	}
	return uint64(n)
}

func readStoreInfoOnce(store, dir string, remote *remoteStore) (*storeInfo, bool, error) {
	b := backendOf(store, remote)
	list, err := fmstore.ListChunks(context.Background(), b) // listed again on each try, the object store's too
	if err != nil {
		return nil, false, err
	}
	si := &storeInfo{Store: store}
	var sp storeSpan
	var stored []query.SeqRange
	dec := chunk.NewDecoder()
	defer dec.Close()
	for _, in := range list {
		var frames []chunk.Frame
		var lo, hi uint64
		if in.Open {
			frames = openFrames(store, in)
			if len(frames) == 0 {
				if gone(b, in) {
					return nil, true, nil
				}
				continue
			}
			si.OpenChunk = true
			lo, hi = frames[0].FirstSeq, frames[len(frames)-1].LastSeq
			for _, f := range frames {
				sp.add(f.MinTS, f.MaxTS, f.FirstSeq, f.LastSeq)
			}
		} else {
			rd, f, err := fmstore.OpenChunk(context.Background(), b, in, dec)
			if err != nil && gone(b, in) {
				return nil, true, nil
			}
			if err != nil {
				si.Damaged = append(si.Damaged, fmt.Sprintf("%s: %v", in.Name, err))
			} else {
				if rd.Note != "" {
					si.Damaged = append(si.Damaged, fmt.Sprintf("%s: %s", in.Name, rd.Note))
				}
				frames = rd.Table.Frames
				rd.Close()
				if f != nil {
					f.Close()
				}
			}
			lo, hi = in.FirstSeq, in.LastSeq
			sp.add(in.MinTS, in.MaxTS, lo, hi)
		}
		si.Chunks++
		si.Packets += hi - lo + 1
		stored = append(stored, query.SeqRange{Lo: lo, Hi: hi})
		for _, f := range frames {
			si.PcapBytes += uint64(f.DSize)
		}
		si.PcapBytes -= 24 // each chunk's pcap header; the file has one
		si.StoredBytes += chunkBytes(store, remote, in)
	}
	if si.Chunks > 0 {
		si.PcapBytes += 24
	}
	if sp.ok {
		si.First, si.Last, si.FirstNS, si.LastNS = tp(sp.first), tp(sp.last), sp.first, sp.last
		si.FirstSeq, si.LastSeq = sp.firstSeq, sp.lastSeq
	}
	if si.StoredBytes > 0 {
		si.Ratio = float64(si.PcapBytes) / float64(si.StoredBytes)
	}
	// Index coverage: the stored seqs valid segments hold, and the rest.
	segs, _ := segment.List(dir)
	var covered []query.SeqRange
	for _, e := range segs {
		si.Index.Bytes += fileSize(filepath.Join(dir, e.Name))
		s, err := segment.Open(dir, e)
		if err != nil {
			si.Index.Refused++
			continue
		}
		si.Index.Segments++
		at := s.First
		for _, g := range s.Gaps {
			if g[0] > at {
				covered = append(covered, query.SeqRange{Lo: at, Hi: g[0] - 1})
			}
			at = g[1] + 1
		}
		if at <= s.Last {
			covered = append(covered, query.SeqRange{Lo: at, Hi: s.Last})
		}
		s.Close()
	}
	covered = query.Merge(covered)
	for _, r := range query.Merge(stored) {
		at := r.Lo
		i := sort.Search(len(covered), func(i int) bool { return covered[i].Hi >= r.Lo })
		for ; i < len(covered) && covered[i].Lo <= r.Hi; i++ {
			c := covered[i]
			if c.Lo > at {
				si.Index.Gaps = append(si.Index.Gaps, [2]uint64{at, c.Lo - 1})
			}
			si.Index.Packets += min(c.Hi, r.Hi) - max(c.Lo, at) + 1
			at = c.Hi + 1
		}
		if at <= r.Hi {
			si.Index.Gaps = append(si.Index.Gaps, [2]uint64{at, r.Hi})
		}
	}
	for _, g := range si.Index.Gaps {
		si.Index.GapPackets += g[1] - g[0] + 1
	}
	for i, r := range removedFrom(store, remote) {
		rm := &si.Removed
		rm.Chunks++
		rm.Packets += r.LastSeq - r.FirstSeq + 1
		if i == 0 || r.MinTS < rm.First.UnixNano() {
			rm.First = tp(r.MinTS)
		}
		if i == 0 || r.MaxTS > rm.Last.UnixNano() {
			rm.Last = tp(r.MaxTS)
		}
		if rm.Reasons == nil {
			rm.Reasons = map[string]int{}
		}
		rm.Reasons[r.Reason]++
		if i == 0 || r.At > rm.LastAt.UnixNano() {
			rm.LastAt = tp(r.At)
		}
	}
	return si, false, nil
}

func fileSize(p string) uint64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return uint64(st.Size())
}

func (si *storeInfo) print(w io.Writer) {
	f := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	ts := func(t *time.Time) string { return t.Format(time.RFC3339Nano) }
	f("store        %s\n", si.Store)
	if si.First == nil {
		f("span         no packets stored\n")
	} else {
		f("span         %s .. %s (%s)\n", ts(si.First), ts(si.Last), si.Last.Sub(*si.First).Round(time.Millisecond))
		if !si.total {
			f("seqs         %d .. %d\n", si.FirstSeq, si.LastSeq)
		}
	}
	open := ""
	if si.OpenChunk {
		open = ", one being written"
	}
	f("packets      %d\n", si.Packets)
	f("pcap bytes   %d\n", si.PcapBytes)
	f("stored bytes %d (ratio %.2f)\n", si.StoredBytes, si.Ratio)
	f("chunks       %d%s\n", si.Chunks, open)
	for _, d := range si.Damaged {
		f("damaged      %s\n", d)
	}
	pct := 0.0
	if si.Packets > 0 {
		pct = 100 * float64(si.Index.Packets) / float64(si.Packets)
	}
	f("index        %d segments (%d refused), %d bytes, %d packets covered (%.1f%%)\n", si.Index.Segments, si.Index.Refused, si.Index.Bytes, si.Index.Packets, pct)
	if len(si.Index.Gaps) > 0 {
		f("index gaps   %d packets in %d ranges (read by queries; indexer --rebuild indexes them):", si.Index.GapPackets, len(si.Index.Gaps))
		for i, g := range si.Index.Gaps {
			if i == 5 {
				f(" ...")
				break
			}
			f(" %d..%d", g[0], g[1])
		}
		f("\n")
	}
	if rm := si.Removed; rm.Chunks == 0 {
		f("retention    nothing removed\n")
	} else if si.total {
		f("retention    %d chunks removed, %d packets\n", rm.Chunks, rm.Packets)
	} else {
		var reasons []string
		for r, n := range rm.Reasons {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(reasons)
		f("retention    %d chunks removed, %d packets captured %s .. %s (by %v), last removal %s\n",
			rm.Chunks, rm.Packets, ts(rm.First), ts(rm.Last), reasons, ts(rm.LastAt))
	}
}

// emptyNotice says on stderr why a query found nothing: the range lies
// outside what the store holds (and what it holds), or the store holds
// that time but no traffic matching.
func emptyNotice(sp storeSpan, from, to int64, filtered bool) {
	switch {
	case !sp.ok:
		fmt.Fprintln(os.Stderr, "fmslice: the store holds no packets")
	case to <= sp.first || from > sp.last:
		fmt.Fprintf(os.Stderr, "fmslice: the range lies outside the stored span %s .. %s\n",
			time.Unix(0, sp.first).UTC().Format(time.RFC3339Nano), time.Unix(0, sp.last).UTC().Format(time.RFC3339Nano))
	case filtered:
		fmt.Fprintln(os.Stderr, "fmslice: the stored span covers this range, but no stored packet in it matches the filter")
	default:
		fmt.Fprintln(os.Stderr, "fmslice: the stored span covers this range, but no packet was captured in it")
	}
}

// sliceMeter sets q.tick to draw progress on stderr (when it is a
// terminal and not quiet): packets written, and how far into the range,
// by capture time, the frames read have got.
func sliceMeter(q *sliceReq, quiet bool) *progress.Meter {
	m := progress.New(os.Stderr, quiet, "fmslice", "packets", 0)
	if m == nil {
		return nil
	}
	sp := span(q.store, q.remote)
	lo, hi := max(q.from, sp.first), min(q.to, sp.last)
	q.tick = func(packets int, ts int64) {
		frac := -1.0
		if sp.ok && hi > lo {
			frac = min(max(float64(ts-lo)/float64(hi-lo), 0), 1)
		}
		m.Update(uint64(packets), frac)
	}
	return m
}
