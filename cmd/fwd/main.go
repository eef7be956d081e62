// Command fwd is the Layer-3 bump in the wire: it forwards packets by a
// 1-1 rule table and puts a copy of them into the capture ring. This is
// only its command line; the forwarder is package fwd (../../fwd), whose
// doc says where each part is.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/fwd"
	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/version"
)

// keys: the flags that stand for a key other than fwd.<flag> (cliutil.Env
// names their variables after it, cliutil.Override sets it).
var keys = map[string]string{"ring": "ring.path"}

func main() {
	app := &cli.App{
		Name:  "fwd",
		Usage: "forward packets by a 1-1 rule table and capture them into the ring",
		Flags: cliutil.Env("fwd", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "configuration file (YAML, see fwd/config.go)"},
			&cli.StringFlag{Name: "check-config", Usage: "check this configuration file, explain any error, and exit"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			// Overrides of the file's settings (flag > environment > file).
			&cli.StringFlag{Name: "ring", Usage: "override ring.path"},
			&cli.StringFlag{Name: "control", Usage: "override fwd.control"},
			&cli.StringFlag{Name: "metrics", Usage: "override fwd.metrics (\"\" for none)"},
			&cli.StringFlag{Name: "backend", Usage: "override fwd.backend"},
			&cli.IntFlag{Name: "bench-gen", Usage: "benchmark: inject this many packets into port 0 (DPDK net_ring loopback), exit when done (see gen.go)"},
		}, keys),
		Action: func(cc *cli.Context) error {
			if f := cc.String("check-config"); f != "" {
				_, ports, rules, err := fwd.LoadConfig(f)
				if err != nil {
					return err
				}
				fmt.Printf("%s: OK, %d ports, %d rules\n", f, len(ports), len(rules))
				return nil
			}
			if cc.String("config") == "" {
				return fmt.Errorf("--config FILE is required (or --check-config FILE)")
			}
			log, err := cliutil.Logger(cc.String("log-level"))
			if err != nil {
				return err
			}
			cfg, ports, rules, err := fwd.LoadConfig(cc.String("config"))
			if err != nil {
				return err
			}
			// The file was checked; what the flags and variables replace
			// in it is checked here.
			if b := cc.String("backend"); cc.IsSet("backend") && b != "afpacket" && b != "dpdk" {
				return fmt.Errorf("--backend %q: use afpacket or dpdk", b)
			}
			if err := cliutil.Override(cc, "fwd", keys, cfg); err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			return fwd.Run(cfg, ports, rules, fwd.Options{Log: log, Stop: sig, BenchGen: cc.Int("bench-gen"), BenchOut: os.Stdout})
		},
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "fwd:", err)
		os.Exit(1)
	}
}
