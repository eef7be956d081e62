package tier

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
	"github.com/fmcap/fmcap/store/segment"
)

// Expire is the bucket's retention by age (fmupload --bucket-retain-age):
// it deletes from b the chunks whose newest packet is older than
// now-maxAge, oldest first, stopping at the first one that is not (so
// what stays is a contiguous range of seqs, as local retention leaves),
// then the index segments that reach into the seqs gone (as local
// retention drops them: their seqs still stored become unindexed, and
// queries scan them). Local files are never touched.
//
// Each chunk removed is recorded first, in an object of its own under
// retention/ (store.RecordRemoved: S3 cannot append), so fmslice over the
// bucket says which part of a range is gone, as it does from a local
// store's retention.log; a crash after the record and before the deletion
// leaves a record of a chunk still listed, which the next run removes
// (writing the same record again).
//
// Crash-safe by order and by re-deriving what is gone from what is left: a
// chunk's data object goes before its frame table and metadata sidecar, so
// a reader never finds a listed chunk without them; a frame table or a segment left behind
// by an interrupted run lies below the first chunk left, and the next run
// deletes it.
//
// through is the uploader's mark: every chunk up to that seq is confirmed
// in the bucket. Nothing above it is taken for a leftover, since the
// uploader runs beside this: a chunk still on its way (or whose upload
// failed and is retried) is not listed yet, while its frame table and the
// segments reaching into it may already be, and the first chunk listed is
// then not the first chunk of the bucket.
func Expire(ctx context.Context, b store.Backend, maxAge time.Duration, now time.Time, through uint64, log *slog.Logger) (removed int, err error) {
	if maxAge <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-maxAge).UnixNano()
	objs, err := b.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("bucket retention: list %s: %w", b, err)
	}
	var chunks []chunk.Info
	tables := map[uint64][]string{} // uncompressed chunks' frame tables and sidecars, by first seq
	for _, o := range objs {
		if in, ok := chunk.ParseName(o.Name); ok && !in.Open {
			chunks = append(chunks, in)
		} else if m := ftabRE.FindStringSubmatch(o.Name); m != nil {
			seq, _ := strconv.ParseUint(m[1], 10, 64)
			tables[seq] = append(tables[seq], o.Name)
		}
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].FirstSeq < chunks[j].FirstSeq })
	var gone uint64 // every seq up to it is gone from the bucket
	for _, in := range chunks {
		if in.MaxTS >= cutoff {
			break
		}
		if err := store.RecordRemoved(ctx, b, in, "age", now.UnixNano()); err != nil {
			return removed, fmt.Errorf("bucket retention: record the removal of %s: %w", in.Name, err)
		}
		for _, f := range in.Files() { // the data object first
			if err := b.Delete(ctx, f); err != nil {
				return removed, fmt.Errorf("bucket retention: delete %s: %w", f, err)
			}
		}
		delete(tables, in.FirstSeq)
		removed++
		gone = in.LastSeq
		log.Info("bucket retention removed a chunk", "chunk", in.Name, "newest_packet", time.Unix(0, in.MaxTS).UTC(), "retain_age", maxAge)
	}
	if removed < len(chunks) && len(chunks) > 0 {
		gone = chunks[removed].FirstSeq - 1
	}
	gone = min(gone, through)
	if gone == 0 {
		return removed, nil
	}
	for seq, names := range tables {
		if seq <= gone && !hasChunk(chunks[removed:], seq) {
			for _, name := range names {
				if err := b.Delete(ctx, name); err != nil {
					return removed, fmt.Errorf("bucket retention: delete %s: %w", name, err)
				}
			}
		}
	}
	segs, err := b.List(ctx, store.IndexDir)
	if err != nil {
		return removed, fmt.Errorf("bucket retention: list %s/%s: %w", b, store.IndexDir, err)
	}
	for _, o := range segs {
		if first, _, ok := segment.ParseName(path.Base(o.Name)); ok && first <= gone {
			if err := b.Delete(ctx, o.Name); err != nil {
				return removed, fmt.Errorf("bucket retention: delete %s: %w", o.Name, err)
			}
		}
	}
	return removed, nil
}

// ftabRE is an uncompressed chunk's frame table's or metadata sidecar's
// name (store/chunk).
var ftabRE = regexp.MustCompile(`^chunk-(\d{20})\.(ftab|fmpm)$`)

func hasChunk(chunks []chunk.Info, first uint64) bool {
	for _, in := range chunks {
		if in.FirstSeq == first {
			return true
		}
	}
	return false
}
