// Command indexer builds the time and flow-key indexes that let fmslice
// read only the frames a query needs. Live, it reads the capture ring as a
// lossy consumer (it can never slow capture or cause a drop; when it falls
// behind it is overrun and records the seqs it missed); with --rebuild it
// indexes stored chunks instead, to fill such gaps or re-index a range.
// This file is only flags, logger, signals and wiring: the engine is package
// indexer (live.go and rebuild.go, the two modes), the format store/segment.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/indexer"
	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/internal/timespec"
	"github.com/fmcap/fmcap/internal/version"
	"github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/segment"
)

func main() {
	app := &cli.App{
		Name:  "indexer",
		Usage: "index the capture ring (or, with --rebuild, a store) for fast filtered slices",
		Flags: cliutil.Env("indexer", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: settings not given as flags or FMCAP_INDEXER_* come from its indexer: section (and ring.path)"},
			&cli.StringFlag{Name: "ring", Usage: "ring file (live mode)"},
			&cli.StringFlag{Name: "consumer", Value: "indexer", Usage: "consumer slot name declared in the ring (lossy)"},
			&cli.StringFlag{Name: "store", Usage: "the writer's store; the index goes in STORE/index unless --index"},
			&cli.StringFlag{Name: "index", Usage: "index directory"},
			&cli.IntFlag{Name: "segment-packets", Value: 1 << 22, Usage: "packets per segment (fewer, larger segments: a smaller index; a segment also ends after --segment-age)"},
			&cli.DurationFlag{Name: "segment-age", Value: indexer.DefaultSegmentAge, Usage: "write a partial segment after this long, so recent packets are indexed"},
			&cli.BoolFlag{Name: "exit-on-close", Usage: "exit once the producer has closed the ring and everything is indexed"},
			&cli.BoolFlag{Name: "rebuild", Usage: "index the store's chunks (all, or --from/--to) instead of the ring"},
			&cli.StringFlag{Name: "from", Usage: "rebuild: start of the range"},
			&cli.StringFlag{Name: "to", Usage: "rebuild: end of the range"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "rebuild: no progress line on stderr (it is drawn only on a terminal)"},
			&cli.StringFlag{Name: "metrics", Value: "127.0.0.1:9563", Usage: "serve Prometheus metrics on this address (\"\" for none)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to this file (for benchmarks)"},
		}, map[string]string{"ring": "ring.path"}),
		Action: func(cc *cli.Context) error {
			if err := cliutil.ApplyConfig(cc, "indexer", nil); err != nil {
				return err
			}
			log, err := cliutil.Logger(cc.String("log-level"))
			if err != nil {
				return err
			}
			dir := cc.String("index")
			if dir == "" && cc.String("store") != "" {
				dir = store.Index(cc.String("store"))
			}
			if dir == "" {
				return fmt.Errorf("--index DIR or --store DIR is required")
			}
			if !cc.Bool("rebuild") && cc.String("ring") != "" {
				if err := cliutil.CheckRing(cc.String("ring")); err != nil {
					return err // before creating the index directory
				}
			}
			fsmode.SetUmask() // segments and gaps.log 0640, directories 0750, whatever the umask
			if err := fsmode.MkdirAll(dir); err != nil {
				return err
			}
			if cc.Int("segment-packets") < segment.DefaultGroupSize {
				return fmt.Errorf("--segment-packets must be at least %d", segment.DefaultGroupSize)
			}
			if cc.Bool("rebuild") {
				if cc.String("store") == "" {
					return fmt.Errorf("--rebuild needs --store")
				}
				from, to, err := timespec.Range(cc.String("from"), cc.String("to"))
				if err != nil {
					return err
				}
				return indexer.Rebuild(cc.String("store"), dir, from, to, cc.Int("segment-packets"), cc.Bool("quiet"), log)
			}
			if cc.String("ring") == "" {
				return fmt.Errorf("--ring is required (or --rebuild --store DIR)")
			}
			stopProfile, err := cliutil.CPUProfile(cc.String("cpuprofile"))
			if err != nil {
				return err
			}
			defer stopProfile()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return indexer.Live(ctx, indexer.LiveConfig{
				Ring: cc.String("ring"), Consumer: cc.String("consumer"), Dir: dir, Store: storeOf(cc.String("store"), dir),
				SegPackets: uint64(cc.Int("segment-packets")), SegAge: cc.Duration("segment-age"),
				ExitOnClose: cc.Bool("exit-on-close"), Metrics: cc.String("metrics"),
			}, log)
		},
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "indexer:", err)
		os.Exit(1)
	}
}

// storeOf is the writer's store: --store, or the index directory's parent.
func storeOf(flag, index string) string {
	if flag != "" {
		return flag
	}
	return store.OfIndex(index)
}
