// Package tier is fmupload's job once its settings are read: take the
// store's uploader lock, abort the multipart uploads an earlier run left
// incomplete, mark the store tiered (STORE/uploaded: retention's quota and
// age then remove only uploaded chunks), and upload, once or for ever,
// with metrics and the systemd watchdog; and, when set, expire the
// bucket's chunks by age (expire.go). The engine is store.Uploader
// (store/upload.go says how it is crash-safe); the object store is
// store/objstore. It lives apart from both because it needs both, and
// objstore imports store.
package tier

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/fmcap/fmcap/internal/metrics"
	"github.com/fmcap/fmcap/internal/sdnotify"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/objstore"
)

// Options are an upload run's settings.
type Options struct {
	Dir      string // the store
	Parallel int    // chunks uploaded at once
	Poll     time.Duration
	Once     bool   // upload what is finished now, then return (an error if some is left)
	Metrics  string // Prometheus address; "" for none (not served with Once)
	Log      *slog.Logger
	// BucketRetainAge deletes from the bucket the chunks whose newest
	// packet is older than this (Expire), after each pass with Once, else
	// every ExpireEvery; 0 keeps them (bucket lifecycle rules may expire
	// them instead).
	BucketRetainAge time.Duration
}

// ExpireEvery is how often the bucket's retention runs while uploading.
const ExpireEvery = time.Minute

// Run uploads the store in o.Dir to b until ctx ends (or once).
func Run(ctx context.Context, b *objstore.Backend, o Options) error {
	log := o.Log
	if err := b.S.Check(ctx); err != nil {
		return err
	}
	u := &store.Uploader{Dir: o.Dir, Remote: b, Parallel: o.Parallel, Poll: o.Poll, Log: log,
		Sweep: func(ctx context.Context) error {
			n, err := b.S.AbortIncomplete(ctx, "", 0)
			if n > 0 {
				log.Info("aborted uploads a failure left incomplete", "uploads", n)
			}
			return err
		}}
	unlock, err := u.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	// Uploads a crash of this uploader left incomplete: invisible, but
	// billed. One uploader a store (the lock), so none is another's.
	if n, err := b.S.AbortIncomplete(ctx, "", 0); err != nil {
		return err
	} else if n > 0 {
		log.Info("aborted incomplete uploads left by an earlier run", "uploads", n)
	}
	if through, tiered, err := store.ReadUploaded(o.Dir); err != nil {
		return err
	} else if !tiered {
		// The mark makes the store tiered: from now on retention's quota
		// and age remove only uploaded chunks.
		if err := store.WriteUploaded(o.Dir, 0, b.String()); err != nil {
			return err
		}
	} else {
		log.Info("resuming", "through_seq", through)
	}
	log.Info("uploading", "store", o.Dir, "to", b.String())
	var expired atomic.Uint64
	expire := func() error {
		n, err := Expire(ctx, b, o.BucketRetainAge, time.Now(), u.Stats().Through, log)
		expired.Add(uint64(n))
		return err
	}
	if o.Once {
		if err := u.Pass(ctx); err != nil {
			return err
		}
		if err := expire(); err != nil {
			return err
		}
		if st := u.Stats(); st.BacklogChunks > 0 {
			return fmt.Errorf("%d chunks not uploaded", st.BacklogChunks)
		}
		return nil
	}
	if err := metrics.Serve(ctx, o.Metrics, log, func(m *metrics.Writer) {
		collect(m, u)
		m.Counter("fmcap_upload_expired_chunks_total", "Chunks deleted from the bucket by its retention by age since start.", expired.Load())
	}); err != nil {
		return err
	}
	if o.BucketRetainAge > 0 {
		go func() { // a failure is logged and tried again: the next pass may do
			t := time.NewTicker(ExpireEvery)
			defer t.Stop()
			for {
				if err := expire(); err != nil && ctx.Err() == nil {
					log.Warn("bucket retention", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	sdnotify.Ready()
	go func() { // the watchdog: a pass may take long, the process is alive
		wd := sdnotify.NewWatchdog()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				wd.Ping(now)
			}
		}
	}()
	return u.Run(ctx)
}

func collect(m *metrics.Writer, u *store.Uploader) {
	st := u.Stats()
	m.Counter("fmcap_upload_chunks_total", "Chunks uploaded (or found complete in the bucket) since start.", st.Chunks)
	m.Counter("fmcap_upload_bytes_total", "Bytes of chunks uploaded since start.", st.Bytes)
	m.Counter("fmcap_upload_segments_total", "Index segments uploaded since start.", st.Segments)
	m.Counter("fmcap_upload_failures_total", "Uploads that failed (each is retried).", st.Failures)
	m.Counter("fmcap_upload_lost_chunks_total", "Chunks retention removed before they were uploaded.", st.Lost)
	m.Gauge("fmcap_upload_backlog_chunks", "Finished chunks not yet uploaded.", float64(st.BacklogChunks))
	m.Gauge("fmcap_upload_backlog_bytes", "Bytes of finished chunks not yet uploaded.", float64(st.BacklogBytes))
	m.Gauge("fmcap_upload_lag_seconds", "Age of the oldest packet not yet uploaded (0: none waiting).", st.Lag.Seconds())
	m.Gauge("fmcap_upload_through_seq", "Every finished chunk up to this seq is uploaded.", float64(st.Through))
}
