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
// (the disk was full), UNIX_NS when it was removed. Lines that do not parse
// (a line cut by a crash) are skipped by readers.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	_, err = fmt.Fprintf(f, "removed %d %d %d %d %s %d\n", in.FirstSeq, in.LastSeq, in.MinTS, in.MaxTS, reason, at)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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

// RemovedRanges reads the retention log; a store without one has removed
// nothing.
func RemovedRanges(dir string) ([]Removed, error) {
	f, err := os.Open(filepath.Join(dir, RetentionLog))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Removed
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if r, ok := parseRemoved(sc.Text()); ok {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}
