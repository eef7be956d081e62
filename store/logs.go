package store

// # Retention log
//
// When retention removes a chunk, the writer first appends one line to
// retention.log in the store directory, so that a query over what is gone
// can say so instead of quietly returning less:
//
//	removed FIRST LAST MIN_TS MAX_TS REASON UNIX_NS\n
//
// FIRST/LAST are the chunk's seqs, MIN_TS/MAX_TS its capture times (Unix ns),
// REASON one of bytes (store quota), free (minimum free disk), age, full
// (the disk was full), UNIX_NS when it was removed. Byte for byte: ASCII,
// the word "removed", then the six fields each after one space (0x20),
// numbers in decimal without leading zeros (the times may have a "-"),
// REASON lower-case letters, and a newline (0x0a). Lines that do not parse
// (a line cut by a crash) are skipped by readers.
//
// # Retention records (object tier)
//
// An object store cannot append, so bucket retention (store/tier, Expire)
// records each chunk it removes as an object of its own, put before the
// chunk's objects are deleted (a crash between the two leaves a record of
// a chunk still there, never a chunk gone unrecorded):
//
//	retention/FFFFFFFFFFFFFFFFFFFF-LLLLLLLLLLLLLLLLLLLL.log
//
// F… and L… are the chunk's FIRST and LAST seqs in 20 decimal digits,
// zero-padded (names sort by seq); the object holds exactly one line of the
// log's format above, newline included and nothing after it, reason age.
// The record of seqs 1..2688 is
// retention/00000000000000000001-00000000000000002688.log, the 79 bytes
// "removed 1 2688 1767225600082660645 1767225841811534851 age
// 1796098685597674778\n". A Put is whole or absent, so a record never
// holds a cut line; one that does not parse is skipped all the same.
// Removals reads both, through the Backend: a local store's retention.log
// and the records under retention/ (a copy of a bucket's prefix on disk
// reads as the bucket does).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/store/chunk"
)

// # Query count
//
// QueriesLog counts the queries fmslice served from the store: each
// appends the two bytes "q\n" (an append that small is atomic), so the
// count is the file's size / 2. It is skipped when the store is read-only
// to the user running fmslice. The writer serves it as a metric.

// CountQuery records one query served from the store in dir.
func CountQuery(dir string) {
	f, err := fsmode.OpenFile(filepath.Join(dir, QueriesLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return
	}
	f.Write([]byte("q\n"))
	f.Close()
}

// Queries is the number of queries served so far.
func Queries(dir string) uint64 {
	st, err := os.Stat(filepath.Join(dir, QueriesLog))
	if err != nil {
		return 0
	}
	return uint64(st.Size() / 2)
}

// Removed is one chunk retention removed.
type Removed struct {
	FirstSeq, LastSeq uint64
	MinTS, MaxTS      int64
	Reason            string
	At                int64
}

// LogRemoved records that chunk in is about to be removed, durably.
func LogRemoved(dir string, in chunk.Info, reason string, at int64) error {
	f, err := fsmode.OpenFile(filepath.Join(dir, RetentionLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return err
	}
	_, err = f.WriteString(removedLine(in, reason, at))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removedLine is the log's line for chunk in, removed at at for reason.
func removedLine(in chunk.Info, reason string, at int64) string {
	return fmt.Sprintf("removed %d %d %d %d %s %d\n", in.FirstSeq, in.LastSeq, in.MinTS, in.MaxTS, reason, at)
}

// RecordName is the name, in the store, of the record of chunk in's
// removal from an object store.
func RecordName(in chunk.Info) string {
	return fmt.Sprintf("%s/%020d-%020d.log", RetentionDir, in.FirstSeq, in.LastSeq)
}

// RecordRemoved puts into b the record that chunk in is about to be
// removed from it; the chunk's objects may go once it returns nil.
func RecordRemoved(ctx context.Context, b Backend, in chunk.Info, reason string, at int64) error {
	line := removedLine(in, reason, at)
	_, err := b.Put(ctx, RecordName(in), strings.NewReader(line), int64(len(line)))
	return err
}

// ParseRecord reads a record's content: ok is false unless it is one line
// of the log that parses.
func ParseRecord(b []byte) (r Removed, ok bool) {
	line, rest, found := bytes.Cut(b, []byte("\n"))
	if !found || len(rest) > 0 {
		return r, false
	}
	return parseRemoved(string(line))
}

// Removals is what retention removed from the store b holds: the lines of
// its retention.log (a local store's) and its records under retention/
// (an object store's), by first seq. Read only through b, so a bucket's
// prefix reads as a directory does; a record that does not parse is
// skipped, as a cut line is. Records are read several at a time: an
// object store answers each with a GET of its own (once: its Backend
// caches them).
func Removals(ctx context.Context, b Backend) ([]Removed, error) {
	var out []Removed
	if data, err := readAll(ctx, b, RetentionLog); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if r, ok := parseRemoved(line); ok {
				out = append(out, r)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	objs, err := b.List(ctx, RetentionDir)
	if err != nil {
		return nil, err
	}
	recs := make([]Removed, len(objs))
	ok := make([]bool, len(objs))
	errs := make([]error, len(objs))
	sem := make(chan struct{}, recordReaders)
	var wg sync.WaitGroup
	for i, o := range objs {
		if o.Size > maxRecord {
			continue // not a record
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			data, err := readAll(ctx, b, o.Name)
			if err != nil && !errors.Is(err, fs.ErrNotExist) { // gone since the listing: skipped
				errs[i] = err
			}
			recs[i], ok[i] = ParseRecord(data)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, r := range recs {
		if ok[i] {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].FirstSeq < out[j].FirstSeq })
	return out, nil
}

// recordReaders is how many records Removals reads at once.
const recordReaders = 16

// maxRecord bounds a record's size: a line is under 120 bytes.
const maxRecord = 4096

// readAll reads the whole of name in b.
func readAll(ctx context.Context, b Backend, name string) ([]byte, error) {
	f, err := b.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, f.Size())
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// RemovedThrough is the highest seq retention has removed (0: none). Chunks
// go oldest first, so every seq below it is gone too, and the newest lines
// say it: only the log's tail is read, however long the log has grown.
func RemovedThrough(dir string) (uint64, error) {
	f, err := os.Open(filepath.Join(dir, RetentionLog))
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	const tail = 4096 // many lines (each under 120 bytes)
	off := max(st.Size()-tail, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil {
		return 0, err
	}
	var through uint64
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := parseRemoved(line); ok { // the first line may be cut by the tail: then it does not parse
			through = max(through, r.LastSeq)
		}
	}
	return through, nil
}

// parseRemoved reads one line of the log; ok is false for a line that does
// not parse (cut by a crash).
func parseRemoved(line string) (r Removed, ok bool) {
	var word string
	n, _ := fmt.Sscanf(line, "%s %d %d %d %d %s %d", &word, &r.FirstSeq, &r.LastSeq, &r.MinTS, &r.MaxTS, &r.Reason, &r.At)
	return r, n == 7 && word == "removed" && !strings.ContainsAny(r.Reason, " \t")
}

// RemovedRanges is Removals of the store in dir.
func RemovedRanges(dir string) ([]Removed, error) {
	return Removals(context.Background(), Local{Dir: dir})
}
