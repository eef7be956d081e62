// Command fminject replays pcap or pcapng files into a capture ring, as a
// NIC would feed it, for tests, demos and benchmarks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/version"
	"github.com/fmcap/fmcap/shmring"
)

func main() {
	app := &cli.App{
		Name:      "fminject",
		Usage:     "produce pcap/pcapng files into an fmcap ring",
		ArgsUsage: "FILE...",
		Flags: cliutil.Env("fminject", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the ring is its ring.path unless --ring"},
			&cli.StringFlag{Name: "ring", Usage: "ring file"},
			&cli.BoolFlag{Name: "now", Usage: "stamp packets with the current time instead of their capture time"},
			&cli.Float64Flag{Name: "pps", Usage: "at most this many packets per second (0: as fast as possible)"},
			&cli.IntFlag{Name: "loop", Value: 1, Usage: "read the files this many times (0: until interrupted)"},
			&cli.BoolFlag{Name: "live", Usage: "behave like a NIC: drop (and count) when the ring is full instead of waiting"},
			&cli.UintFlag{Name: "port", Usage: "port number recorded with each packet"},
			&cli.BoolFlag{Name: "keep-open", Usage: "do not mark the ring closed at the end"},
			&cli.BoolFlag{Name: "q", Usage: "no summary on stderr"},
		}, map[string]string{"ring": "ring.path"}),
		Action: func(cc *cli.Context) error {
			if err := cliutil.FromConfig(cc, "ring", "ring", "path"); err != nil {
				return err
			}
			if cc.String("ring") == "" {
				return fmt.Errorf("--ring PATH is required (or ring.path in --config)")
			}
			if cc.NArg() == 0 {
				return fmt.Errorf("give at least one pcap or pcapng file")
			}
			opt := options{
				files: cc.Args().Slice(), now: cc.Bool("now"), pps: cc.Float64("pps"), loop: cc.Int("loop"),
				live: cc.Bool("live"), port: uint16(cc.Uint("port")), keepOpen: cc.Bool("keep-open"),
			}
			if opt.loop < 0 || opt.pps < 0 {
				return fmt.Errorf("--loop and --pps cannot be negative")
			}
			// Check every file before producing anything.
			for _, f := range opt.files {
				if err := checkFile(f); err != nil {
					return err
				}
			}
			r, err := shmring.Open(cc.String("ring"))
			if err != nil {
				return cliutil.RingMissing(cc.String("ring"), err)
			}
			defer r.Close()
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			st, err := inject(ctx, r, opt)
			if !cc.Bool("q") {
				fmt.Fprintf(os.Stderr, "fminject: %d packets injected, %d dropped (ring full), %d cut to the ring's max caplen\n", st.written, st.dropped, st.cut)
			}
			return err
		},
	}
	version.Setup(app)
	if err := app.Run(cliutil.FlagsFirst(app, os.Args)); err != nil { // flags after the files too
		fmt.Fprintln(os.Stderr, "fminject:", err)
		os.Exit(1)
	}
}
