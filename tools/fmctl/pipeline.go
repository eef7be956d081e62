package main

// fmctl stats --config: after fwd's own figures, the rest of the pipeline
// for a person: the ring (geometry, each consumer's lag and losses) and
// the writer's and indexer's figures, and the uploader's (its backlog and
// lag) when the configuration has an upload: section, read from their
// Prometheus endpoints (the same numbers a scraper gets).

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/shmring"
)

func pipelineStats(cfg string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	if path, ok, _ := cliutil.ConfigValue(cfg, "ring", "path"); ok {
		if r, err := shmring.Open(path); err != nil {
			fmt.Fprintf(w, "\nring: %v\n", err)
		} else {
			in := r.Info()
			r.Close()
			fmt.Fprintf(w, "\nRING %s\twritten %d\tdrops %d\tsize %d\n", path, in.Written, in.Drops, in.DataSize)
			fmt.Fprintln(w, "CONSUMER\tMODE\tPID\tLAG RECORDS\tLAG BYTES\tMISSED")
			for _, c := range in.Consumers {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\n", c.Name, c.Mode, c.PID, c.LagRecords, c.LagBytes, c.Missed)
			}
		}
	}
	procs := []struct{ name, def string }{{"writer", "127.0.0.1:9562"}, {"indexer", "127.0.0.1:9563"}}
	// fmupload runs only for a tiered store: one whose configuration names
	// a bucket (its metrics address alone counts too).
	_, bucket, _ := cliutil.ConfigValue(cfg, "upload", "bucket")
	_, addr, _ := cliutil.ConfigValue(cfg, "upload", "metrics")
	if bucket || addr {
		procs = append(procs, struct{ name, def string }{"upload", "127.0.0.1:9564"})
	}
	for _, p := range procs {
		addr := p.def
		if v, ok, _ := cliutil.ConfigValue(cfg, p.name, "metrics"); ok {
			addr = v
		}
		if addr == "" {
			continue
		}
		fmt.Fprintf(w, "\n%s (http://%s/metrics)\n", strings.ToUpper(p.name), addr)
		c := http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get("http://" + addr + "/metrics")
		if err != nil {
			fmt.Fprintf(w, "  not reachable: %v (is it running, with this metrics address?)\n", err)
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "fmcap_ring_") {
				continue // help lines; the ring is shown above
			}
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				fmt.Fprintf(w, "  %s\t%s\n", l[:i], l[i+1:])
			}
		}
		resp.Body.Close()
	}
}
