package fwd

// Wiring: ring producer, backend ports, datapath, control socket, and the
// poll loop on the calling (locked) goroutine until a signal.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
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

// Options are what Run takes besides the checked configuration.
type Options struct {
	Log *slog.Logger
	// Stop ends forwarding when a signal arrives on it (fwd's main
	// relays SIGTERM and SIGINT); the signal is logged.
	Stop <-chan os.Signal
	// BenchGen > 0 injects that many packets and stops when all came
	// back through (gen.go); the report line goes to BenchOut.
	BenchGen int
	BenchOut io.Writer
}

// Run forwards by the configuration's ports and rules (as LoadConfig
// checked them) until opts.Stop delivers a signal.
func Run(cfg *Config, ports []Port, rules []Rule, opts Options) error {
	log, benchGen := opts.Log, opts.BenchGen
	for i, p := range ports {
		if strings.HasPrefix(p.Device, ringPairPrefix) && (benchGen == 0 || i != 0 || cfg.Fwd.Backend != "dpdk") {
			return fmt.Errorf("port %s: device %q: a ring pair is port 0 of fwd --bench-gen on the dpdk backend only (nothing else empties its transmit ring)", p.Name, p.Device)
		}
	}
	// The backends poll from this goroutine and DPDK pins its thread to a
	// core, so it stays locked to it (not unlocked on return: a pinned
	// thread should not go back to serve other goroutines).
	runtime.LockOSThread()
	// Before the ring and the backend: a second fwd on these devices must
	// change nothing, not even the ring's producer (see portlock.go).
	locks, err := lockPorts(cfg.Fwd.Backend, cfg.Fwd.DPDK.EAL, ports)
	if err != nil {
		return err
	}
	defer locks.close()
	ring, prod, closeRing, err := openRing(cfg.Ring.Path, log)
	if err != nil {
		return err
	}
	defer closeRing()
	be, err := newBackend(cfg, ports, log)
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
		s := <-opts.Stop
		log.Info("stopping", "signal", s)
		be.halt()
	}()
	start := time.Now()
	be.run()
	d.publish()
	s := d.Stats()
	if gen != nil {
		fmt.Fprintln(opts.BenchOut, genReport(gen, benchGen, s))
	}
	log.Info("stopped", "uptime", time.Since(start).Round(time.Millisecond), "forwarded", s.Forwarded,
		"captured", s.Captured, "capture_drops", s.CaptureDrops)
	return nil
}

// openRing maps the ring and becomes its producer; close detaches and
// unmaps. Without a path there is no ring: forwarding without capture.
func openRing(path string, log *slog.Logger) (ring *shmring.Ring, prod *shmring.Producer, close func(), err error) {
	if path == "" {
		log.Warn("no ring.path in the configuration: forwarding without capture")
		return nil, nil, func() {}, nil
	}
	r, err := shmring.Open(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w (create it first: fmring create --ring %s ...)", err, path)
	}
	if err := r.Prefault(); err != nil {
		log.Warn("capture may page-fault at first", "err", err)
	}
	if prod, err = r.NewProducer(shmring.Live); err != nil {
		r.Close()
		return nil, nil, nil, err
	}
	// A restarting fwd continues the ring; it does not close it.
	return r, prod, func() { prod.Detach(); r.Close() }, nil
}

func newBackend(cfg *Config, ports []Port, log *slog.Logger) (backend, error) {
	if cfg.Fwd.Backend == "dpdk" {
		return newDPDKBackend(cfg.Fwd.DPDK.EAL, ports)
	}
	b, err := newAFBackend(ports, log) // "" or "afpacket": Config.check allowed no other
	if err != nil {
		return nil, err
	}
	b.spin = int64(cfg.Fwd.spin)
	switch cfg.Fwd.FastPath {
	case "kernel":
		if b.fp, err = newFastpath(b); err != nil {
			b.close()
			return nil, err
		}
	case "", "auto":
		// Where the kernel cannot (no tcx, no CAP_BPF, a seccomp filter
		// without bpf): every frame through fwd, as with off.
		if b.fp, err = newFastpath(b); err != nil {
			log.Warn("kernel fast path unavailable: every frame goes through fwd (fwd.fastpath: off says so quietly)", "err", err)
		}
	}
	return b, nil
}
