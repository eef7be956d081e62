// Package store owns the store directory: what lies where in it, the logs
// kept beside the chunks, and retention across chunks and index segments.
// The formats of the files themselves are store/chunk and store/segment;
// the processes (writer, indexer, fmslice) find their way through the
// directory only by the names given here and there.
//
// # Layout
//
//	STORE/
//	  chunk-F-L-A-B.pcap.zst    sealed chunks: seqs F..L, times A..B; names
//	                            sort by seq (store/chunk: FinalName, List)
//	  chunk-F-L-A-B.pcap/.ftab/.fmpm  the same, uncompressed, with its frame
//	                            table and metadata sidecar (chunk-F.ftab, chunk-F.fmpm)
//	  .open-F.pcap.zst, .open-F.ftab
//	                            the chunk being written and its live frame
//	                            table (store/chunk: Writer, Recover)
//	  index/seg-*               index segments (IndexDir; store/segment)
//	  index/gaps.log            seqs the live indexer missed (GapsLog)
//	  retention.log             what retention removed (RetentionLog, logs.go)
//	  queries.log               one line per query served (QueriesLog)
//	  uploaded                  how far fmupload got (UploadedMark, upload.go);
//	                            its presence makes the store tiered
//	  .upload.lock              held by the one fmupload of the store
//
// The same names, under s3://BUCKET/PREFIX/NODE/, are the store's object
// tier (finished chunks, their frame tables and sidecars, index/seg-*, and the records
// of bucket retention under retention/; no logs): the Backend interface
// (backend.go) reads either.
//
// Chunk and frame-table names are spelled by store/chunk alone, which parses
// them back; the names of the store's other entries are spelled here once.
package store

import "path/filepath"

const (
	// IndexDir is the directory, inside the store, of the index segments.
	IndexDir = "index"
	// RetentionLog is the log of what retention removed.
	RetentionLog = "retention.log"
	// RetentionDir holds, in an object store, one record per chunk bucket
	// retention removed (logs.go).
	RetentionDir = "retention"
	// QueriesLog counts the queries served from the store.
	QueriesLog = "queries.log"
	// GapsLog, in the index directory, lists the seqs the live indexer
	// missed, one "missed FIRST LAST UNIX_NS" line each, for operators.
	GapsLog = "gaps.log"
)

// Index is the index directory of the store in dir.
func Index(dir string) string { return filepath.Join(dir, IndexDir) }

// OfIndex is the store an index directory belongs to: its parent (the
// index is kept in STORE/index unless placed elsewhere by hand).
func OfIndex(index string) string { return filepath.Dir(index) }
