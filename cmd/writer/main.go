// Command writer consumes the capture ring into a store of compressed pcap
// chunks. This file is only flags, logger, signals and wiring: the engine is
// package writer (writer/pipeline.go tells how it works), the format
// store/chunk.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/version"
	"github.com/fmcap/fmcap/writer"
)

func main() {
	app := &cli.App{
		Name:  "writer",
		Usage: "store the capture ring as compressed pcap chunks",
		Flags: cliutil.Env("writer", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: settings not given as flags or FMCAP_WRITER_* variables come from its writer: section (and ring.path)"},
			&cli.StringFlag{Name: "ring", Usage: "ring file (see fmring create)"},
			&cli.StringFlag{Name: "consumer", Value: "writer", Usage: "consumer slot name declared in the ring (lossless)"},
			&cli.StringFlag{Name: "store", Usage: "store directory (created if missing)"},
			&cli.StringFlag{Name: "compress", Value: "zstd", Usage: "zstd or none (plain pcap, per-packet origin in a chunk-F.fmpm sidecar)"},
			&cli.IntFlag{Name: "level", Value: 1, Usage: "zstd effort: 1 fastest (literals not entropy-coded), 2 fast, 3 default, 4 better"},
			&cli.StringFlag{Name: "frame-size", Value: "32KiB", Usage: "pcap bytes per frame (16KiB..1MiB)"},
			&cli.DurationFlag{Name: "flush", Value: writer.DefaultFlush, Usage: "publish a partial frame after this long, so recent packets are visible"},
			&cli.StringFlag{Name: "chunk-size", Value: "1GiB", Usage: "rotate after this many pcap bytes"},
			&cli.DurationFlag{Name: "chunk-age", Value: writer.DefaultChunkAge, Usage: "rotate after this long"},
			&cli.IntFlag{Name: "workers", Value: runtime.GOMAXPROCS(0), Usage: "compression workers"},
			&cli.StringFlag{Name: "retain-bytes", Usage: "store quota: remove the oldest chunks beyond this size (0: no quota)", Value: "0"},
			&cli.StringFlag{Name: "retain-free", Usage: "keep at least this much disk free, removing the oldest chunks (0: no minimum)", Value: "0"},
			&cli.DurationFlag{Name: "retain-age", Usage: "remove chunks whose newest packet is older than this (0: forever)"},
			&cli.StringFlag{Name: "metrics", Value: "127.0.0.1:9562", Usage: "serve Prometheus metrics on this address (\"\" for none)"},
			&cli.BoolFlag{Name: "exit-on-close", Usage: "exit once the producer has closed the ring and everything is stored"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to this file (for benchmarks)"},
		}, map[string]string{"ring": "ring.path"}),
		Action: func(cc *cli.Context) error {
			if err := cliutil.ApplyConfig(cc, "writer", nil); err != nil {
				return err
			}
			if cc.String("ring") == "" || cc.String("store") == "" {
				return fmt.Errorf("--ring and --store are required (or ring.path and writer.store in --config)")
			}
			log, err := cliutil.Logger(cc.String("log-level"))
			if err != nil {
				return err
			}
			cfg, err := configFrom(cc)
			if err != nil {
				return err
			}
			stopProfile, err := cliutil.CPUProfile(cc.String("cpuprofile"))
			if err != nil {
				return err
			}
			defer stopProfile()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return writer.Run(ctx, cfg, log)
		},
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}

// configFrom turns the flags into the engine's configuration, checking each.
func configFrom(cc *cli.Context) (*writer.Config, error) {
	cfg := &writer.Config{
		Ring: cc.String("ring"), Consumer: cc.String("consumer"), Store: cc.String("store"),
		Level: cc.Int("level"), FlushInterval: cc.Duration("flush"), ChunkAge: cc.Duration("chunk-age"),
		Workers: cc.Int("workers"), ExitOnClose: cc.Bool("exit-on-close"), Metrics: cc.String("metrics"),
	}
	switch cc.String("compress") {
	case "zstd":
		cfg.Compress = true
	case "none":
	default:
		return nil, fmt.Errorf("--compress %q: use zstd or none", cc.String("compress"))
	}
	fs, err := cliutil.ParseSize(cc.String("frame-size"))
	if err != nil || fs < 16<<10 || fs > 1<<20 {
		return nil, fmt.Errorf("--frame-size %q: give 16KiB to 1MiB", cc.String("frame-size"))
	}
	cfg.FrameSize = int(fs)
	cs, err := cliutil.ParseSize(cc.String("chunk-size"))
	if err != nil || cs < fs {
		return nil, fmt.Errorf("--chunk-size %q: give a size of at least one frame", cc.String("chunk-size"))
	}
	cfg.ChunkSize = int64(cs)
	if cfg.Level < 1 || cfg.Level > 4 {
		return nil, fmt.Errorf("--level %d: give 1 to 4", cfg.Level)
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.RetainBytes, err = cliutil.ParseSize(cc.String("retain-bytes")); err != nil {
		return nil, fmt.Errorf("--retain-bytes: %w", err)
	}
	if cfg.RetainFree, err = cliutil.ParseSize(cc.String("retain-free")); err != nil {
		return nil, fmt.Errorf("--retain-free: %w", err)
	}
	if cfg.RetainAge = cc.Duration("retain-age"); cfg.RetainAge < 0 {
		return nil, fmt.Errorf("--retain-age must not be negative")
	}
	if cfg.FlushInterval <= 0 || cfg.ChunkAge <= 0 {
		return nil, fmt.Errorf("--flush and --chunk-age must be positive")
	}
	return cfg, nil
}
