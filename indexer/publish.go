package indexer

import (
	"os"
	"path/filepath"

	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/segment"
)

// publish writes b's segment into dir and then makes sure it does not
// reach into seqs the writer's retention has removed from store: a segment
// must never point at frames that no longer exist. Retention logs a
// removal, deletes the chunk and then deletes the segments reaching into
// it; a segment renamed into place after that last step (the indexer was
// behind, or rebuilt from a chunk that was deleted while it read it) would
// stay. Reading the log after the rename closes that window: either this
// read sees the removal, or the rename came first and retention's own
// sweep removes the segment. It says whether the segment was kept.
func publish(b *segment.Builder, dir, store string) (bool, error) {
	name, err := b.Write(dir)
	if err != nil {
		return false, err
	}
	through, err := fmstore.RemovedThrough(store)
	if err != nil || through < b.First() {
		return true, nil // an unreadable log changes nothing: retention's sweep still runs
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
		return true, err
	}
	return false, nil
}
