package main

// Wiring: ring producer, backend ports, datapath, control socket, and the
// poll loop on the calling (locked) goroutine until a signal.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fmcap/fmcap/internal/metrics"
	"github.com/fmcap/fmcap/internal/sdnotify"
	"github.com/fmcap/fmcap/shmring"
)

// backend is what afpacket.go and dpdk.go provide.
type backend interface {
	txer
	macs() [][6]byte
	mtus() []int
	setDatapath(d *Datapath, ready func())
	run()
	halt()
	close()
}

func run(cfg *Config, ports []Port, rules []Rule, log *slog.Logger, sig chan os.Signal, benchGen int) error {
	// Before the ring and the backend: a second fwd on these devices must
	// change nothing, not even the ring's producer (see portlock.go).
	locks, err := lockPorts(cfg.Fwd.Backend, cfg.Fwd.DPDK.EAL, ports)
	if err != nil {
		return err
	}
	defer locks.close()
	var prod *shmring.Producer
	var ring *shmring.Ring
	if cfg.Ring.Path != "" {
		r, err := shmring.Open(cfg.Ring.Path)
		if err != nil {
			return fmt.Errorf("%w (create it first: fmring create --ring %s ...)", err, cfg.Ring.Path)
		}
		defer r.Close()
		ring = r
		if err := r.Prefault(); err != nil {
			log.Warn("capture may page-fault at first", "err", err)
		}
		if prod, err = r.NewProducer(shmring.Live); err != nil {
			return err
		}
		defer prod.Detach() // a restarting fwd continues the ring; it does not close it
	} else {
		log.Warn("no ring.path in the configuration: forwarding without capture")
	}
	var be backend
	switch cfg.Fwd.Backend {
	case "", "afpacket":
		be, err = newAFBackend(ports, log)
	case "dpdk":
		be, err = newDPDKBackend(cfg.Fwd.DPDK.EAL, ports)
	}
	if err != nil {
		return err
	}
	defer be.close()
	d := NewDatapath(ports, be.macs(), buildTable(ports, rules).withRoutes(cfg.routes), prod, be)
	for i, mtu := range be.mtus() {
		d.SetMTU(i, mtu)
		if a := ports[i].Appliance; a != nil && a.Role == RoleGWLB && mtu > 0 && mtu < gwlbMinMTU {
			log.Warn("a GWLB appliance port needs an MTU of 8568 (GWLB's 8500 and its 68 bytes): larger packets will be lost on the way in",
				"port", ports[i].Name, "mtu", mtu)
		}
	}
	d.keepGSO = cfg.Fwd.CaptureGSO == "keep"
	d.wd = sdnotify.NewWatchdog()
	c := &control{cfg: cfg, ports: ports, d: d, log: log}
	if cfg.Fwd.Control != "" {
		if err := listenControl(cfg.Fwd.Control, c); err != nil {
			return err
		}
		defer c.close()
	}
	addr := "127.0.0.1:9561"
	if cfg.Fwd.Metrics != nil {
		addr = *cfg.Fwd.Metrics
	}
	mctx, stopMetrics := context.WithCancel(context.Background())
	defer stopMetrics()
	if err := metrics.Serve(mctx, addr, log, func(w *metrics.Writer) { writeMetrics(w, d.Stats(), ring) }); err != nil {
		log.Warn("no metrics", "err", err) // forwarding matters more than its figures
	}
	be.setDatapath(d, func() {
		log.Info("forwarding", "backend", cfg.Fwd.Backend, "ports", len(ports), "rules", len(rules), "ring", cfg.Ring.Path)
		sdnotify.Ready()
	})
	var gen *genState
	if benchGen > 0 {
		g, ok := be.(genner)
		switch {
		case ok && ports[0].Appliance != nil && ports[0].Appliance.Role == RoleGWLB:
			gen = g.setGen(gwlbBenchFrame(ports[0], be.macs()[0]), benchGen)
		case ok && len(rules) > 0:
			gen = g.setGen(benchFrame(rules[0], be.macs()[rules[0].In]), benchGen)
		default:
			return fmt.Errorf("--bench-gen needs the dpdk backend (port 0 a net_ring loopback) and a rule, or port 0 a gwlb port")
		}
	}
	go func() {
		s := <-sig
		log.Info("stopping", "signal", s)
		be.halt()
	}()
	start := time.Now()
	be.run()
	d.publish()
	s := d.Stats()
	if gen != nil {
		fmt.Println(genReport(gen, benchGen, s))
	}
	log.Info("stopped", "uptime", time.Since(start).Round(time.Millisecond), "forwarded", s.Forwarded,
		"captured", s.Captured, "capture_drops", s.CaptureDrops)
	return nil
}
