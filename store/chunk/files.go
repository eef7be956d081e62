package chunk

import (
	"os"
	"path/filepath"
)

// Size is the bytes the chunk's files take in dir (0 for files gone).
func (i *Info) Size(dir string) uint64 {
	var n uint64
	for _, f := range i.Files() {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += uint64(st.Size())
		}
	}
	return n
}

// Files are the file names that make up a chunk: the chunk, and its frame
// table when that is a file of its own (uncompressed chunks, and the open
// compressed chunk's live table), then an uncompressed chunk's metadata
// sidecar (MetaFile), which chunks from before it do not have.
func (i *Info) Files() []string {
	if i.Open && i.Zstd {
		return []string{i.Name, ftabName(i.FirstSeq, true)}
	}
	if i.Zstd {
		return []string{i.Name}
	}
	return []string{i.Name, ftabName(i.FirstSeq, false), metaName(i.FirstSeq)}
}

// MetaFile is an uncompressed chunk's metadata sidecar, "" for a
// compressed chunk (its metadata is inside it). It may be missing: an
// uncompressed chunk written before sidecars has none, its packets'
// origin unknown.
func (i *Info) MetaFile() string {
	if i.Zstd {
		return ""
	}
	return metaName(i.FirstSeq)
}
