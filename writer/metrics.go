package writer

// Prometheus metrics (--metrics, 127.0.0.1:9562 by default): what was
// stored, how well it compressed, the store's size, retention, and this
// consumer's lag in the ring.

import (
	"github.com/fmcap/fmcap/internal/metrics"
	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/chunk"
)

func writeMetrics(w *metrics.Writer, cfg *Config, st *stats, ret *store.Retention, r *shmring.Ring) {
	in, out := st.inBytes.Load(), st.outBytes.Load()
	w.Counter("fmcap_writer_packets_total", "Packets stored.", st.packets.Load())
	w.Counter("fmcap_writer_input_bytes_total", "pcap bytes stored (before compression).", in)
	w.Counter("fmcap_writer_output_bytes_total", "Bytes written to chunk files.", out)
	ratio := 0.0
	if out > 0 {
		ratio = float64(in) / float64(out)
	}
	w.Gauge("fmcap_writer_compression_ratio", "pcap bytes per stored byte so far.", ratio)
	w.Counter("fmcap_writer_frames_total", "Frames stored.", st.frames.Load())
	w.Counter("fmcap_writer_frames_stored_plain_total", "Frames stored in raw zstd blocks (traffic compressing below 1.10).", st.plain.Load())
	w.Counter("fmcap_writer_chunks_total", "Chunks finished.", st.chunks.Load())
	w.Counter("fmcap_writer_write_retries_total", "Writes that failed (disk full, I/O error) and were retried.", st.retries.Load())
	w.Counter("fmcap_writer_skipped_total", "Packets found already stored after a restart.", st.skipped.Load())
	var size uint64
	var n int
	if list, err := chunk.List(cfg.Store); err == nil {
		for _, c := range list {
			size += c.Size(cfg.Store)
			n++
		}
	}
	w.Gauge("fmcap_store_bytes", "Bytes in the store's chunks.", float64(size))
	w.Gauge("fmcap_store_chunks", "Chunks in the store, the open one included.", float64(n))
	w.Counter("fmcap_slice_queries_total", "Queries fmslice served from this store (fmslice and fmslice flows).", store.Queries(cfg.Store))
	w.Gauge("fmcap_store_free_bytes", "Free space on the store's filesystem.", float64(store.FreeBytes(cfg.Store)))
	removed, removedBytes := ret.Totals()
	w.Counter("fmcap_retention_removed_chunks_total", "Chunks removed by retention.", removed)
	w.Counter("fmcap_retention_removed_bytes_total", "Bytes removed by retention.", removedBytes)
	// A tiered store's chunk removed before its upload (only a full disk
	// does that) is lost to the object store: fmupload counts it too
	// (fmcap_upload_lost_chunks_total), but only while it runs.
	w.Counter("fmcap_retention_lost_to_tier_chunks_total", "Chunks of a tiered store removed (full disk) before they were uploaded.", ret.LostToTier())
	metrics.Ring(w, r.Info())
}
