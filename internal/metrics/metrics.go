// Package metrics serves Prometheus metrics in the text exposition format
// (version 0.0.4) over HTTP, on localhost by default. Each process gives a
// function that writes its current figures when scraped; nothing is kept
// between scrapes, so the hot paths only keep the counters they already
// have. Written by hand: the format is a few lines and no client library
// is needed for it.
package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/fmcap/fmcap/shmring"
)

// Writer writes one scrape. The format wants each metric's samples
// together, after its HELP and TYPE lines; callers write figures in the
// order they have them (per port, then per rule), which interleaves
// metrics, and strict readers (the Python client, OpenMetrics parsers)
// take a metric's second group for another, untyped family. So each
// metric's lines are kept apart and written out together at the end, the
// metrics in the order they first appeared.
type Writer struct {
	byName map[string]*bytes.Buffer
	order  []*bytes.Buffer
}

func newWriter() *Writer { return &Writer{byName: map[string]*bytes.Buffer{}} }

// Metric writes one sample; the HELP and TYPE lines the first time a name
// appears. typ is "counter" or "gauge"; labels alternate name, value.
func (m *Writer) Metric(name, typ, help string, v float64, labels ...string) {
	b := m.byName[name]
	if b == nil {
		b = new(bytes.Buffer)
		m.byName[name] = b
		m.order = append(m.order, b)
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%s=%q", labels[i], labels[i+1])
		}
		b.WriteByte('}')
	}
	fmt.Fprintf(b, " %s\n", formatFloat(v))
}

// writeTo writes the scrape, metric by metric.
func (m *Writer) writeTo(w io.Writer) (int64, error) {
	var n int64
	for _, b := range m.order {
		k, err := w.Write(b.Bytes())
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Counter and Gauge are Metric with the type.
func (m *Writer) Counter(name, help string, v uint64, labels ...string) {
	m.Metric(name, "counter", help, float64(v), labels...)
}

func (m *Writer) Gauge(name, help string, v float64, labels ...string) {
	m.Metric(name, "gauge", help, v, labels...)
}

func formatFloat(v float64) string {
	if v == float64(int64(v)) && v < 1e15 && v > -1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

// Serve listens on addr and serves /metrics until ctx ends. An empty addr
// serves nothing. The collect function is called once per scrape, from the
// HTTP goroutine: it must read the process's figures safely (atomics or a
// published snapshot).
func Serve(ctx context.Context, addr string, log *slog.Logger, collect func(*Writer)) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m := newWriter()
		collect(m)
		m.writeTo(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Debug("serving metrics", "addr", ln.Addr().String())
	return nil
}

// Handler serves the metrics collect writes, for a process that has its
// own HTTP server (fmcapd).
func Handler(collect func(*Writer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m := newWriter()
		collect(m)
		m.writeTo(w)
	})
}

// SortedKeys is a map's keys in order, for stable output.
func SortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// Ring writes the ring's fill and each consumer's lag and losses.
func Ring(w *Writer, in shmring.Info) {
	var maxLag uint64
	for _, c := range in.Consumers {
		if c.Mode == shmring.Lossless && c.LagBytes > maxLag {
			maxLag = c.LagBytes
		}
		w.Gauge("fmcap_ring_consumer_lag_bytes", "Bytes written to the ring and not yet consumed, per consumer.", float64(c.LagBytes), "consumer", c.Name)
		w.Gauge("fmcap_ring_consumer_lag_records", "Records not yet consumed, per consumer.", float64(c.LagRecords), "consumer", c.Name)
		w.Counter("fmcap_ring_consumer_missed_total", "Records a lossy consumer missed (overrun).", c.Missed, "consumer", c.Name)
	}
	w.Gauge("fmcap_ring_fill_ratio", "Fill of the ring by the slowest lossless consumer (1: full, the producer drops).", float64(maxLag)/float64(in.DataSize))
	w.Counter("fmcap_ring_written_total", "Records written to the ring.", in.Written)
	w.Counter("fmcap_ring_drops_total", "Records the producer dropped because the ring was full.", in.Drops)
}
