// Command fminject replays pcap or pcapng files into a capture ring, as a
// NIC would feed it, for tests, demos and benchmarks. It reads them with
// libpcap, so the ring holds what tcpdump reads from them (inject.go).
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
		ArgsUsage: "FILE... (- for standard input)",
		Flags: cliutil.Env("fminject", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: the ring is its ring.path unless --ring"},
			&cli.StringFlag{Name: "ring", Usage: "ring file"},
			&cli.BoolFlag{Name: "now", Usage: "stamp packets with the current time instead of their capture time"},
			&cli.Float64Flag{Name: "pps", Usage: "at most this many packets per second (0: as fast as possible)"},
			&cli.IntFlag{Name: "loop", Value: 1, Usage: "read the files this many times (0: until interrupted)"},
			&cli.BoolFlag{Name: "live", Usage: "behave like a NIC: drop (and count) when the ring is full instead of waiting"},
			&cli.UintFlag{Name: "port", Usage: "port number recorded with each packet"},
			&cli.BoolFlag{Name: "keep-open", Usage: "do not mark the ring closed at the end"},
			&cli.BoolFlag{Name: "q", Aliases: []string{"quiet"}, Usage: "no progress and no summary on stderr (notes about changed packets still)"},
		}, map[string]string{"ring": "ring.path"}),
		Action: run,
	}
	version.Setup(app)
	if err := app.Run(cliutil.FlagsFirst(app, os.Args)); err != nil { // flags after the files too
		fmt.Fprintln(os.Stderr, "fminject:", err)
		os.Exit(1)
	}
}

func run(cc *cli.Context) error {
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
	quiet := cc.Bool("q")
	showProgress := !quiet && isTerminal(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Read every file to its end before producing anything: a file libpcap
	// refuses anywhere injects nothing.
	var ins []input
	var total uint64
	for _, path := range opt.files {
		if readOnce(path) {
			if opt.loop != 1 {
				return fmt.Errorf("%s is not a regular file and can be read only once: --loop must be 1", displayName(path))
			}
			ins = append(ins, input{path: path, once: true})
			continue
		}
		var size uint64
		if st, err := os.Stat(path); err == nil {
			size = uint64(st.Size())
		}
		pr := startProgress(os.Stderr, showProgress, "checking "+path+":", size, true)
		in, err := check(ctx, path, pr)
		pr.end()
		if err != nil {
			return err
		}
		ins = append(ins, in)
		total += in.packets
	}
	for _, in := range ins {
		if in.once || opt.loop == 0 {
			total = 0 // unknown
		}
	}
	total *= uint64(opt.loop)

	r, err := shmring.Open(cc.String("ring"))
	if err != nil {
		return cliutil.RingMissing(cc.String("ring"), err)
	}
	defer r.Close()
	pr := startProgress(os.Stderr, showProgress, "injected", total, false)
	c, err := inject(ctx, r, opt, ins, pr)
	pr.end()
	c.report(os.Stderr)
	if !quiet {
		fmt.Fprintf(os.Stderr, "fminject: %d packets injected, %d dropped (ring full), %d cut to the ring's max caplen\n", c.written, c.dropped, c.cut)
	}
	return err
}
