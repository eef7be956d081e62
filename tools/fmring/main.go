// Command fmring creates, describes and destroys capture rings. A ring's
// lifetime is its own: restarting the producer or a consumer never loses
// what the ring holds.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/version"
	"github.com/fmcap/fmcap/shmring"
)

func main() {
	app := &cli.App{
		Name:  "fmring",
		Usage: "create, inspect and destroy fmcap capture rings",
		Commands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create a ring and declare its consumers",
				Flags: cliutil.Env("ring", []cli.Flag{
					configFlag,
					&cli.StringFlag{Name: "ring", Usage: "path (on /dev/hugepages for huge pages, or e.g. /dev/shm)"},
					&cli.StringFlag{Name: "size", Value: "256MiB", Usage: "data area size, a power of two"},
					&cli.StringSliceFlag{Name: "consumer", Usage: "NAME:lossless or NAME:lossy (repeat)"},
					&cli.UintFlag{Name: "max-caplen", Value: shmring.DefaultMaxCaplen, Usage: "largest packet kept whole"},
					&cli.Uint64Flag{Name: "first-seq", Value: 1, Usage: "seq of the first packet"},
					&cli.BoolFlag{Name: "exist-ok", Usage: "succeed when a ring with the same geometry and consumers exists (service start)"},
				}, ringKeys),
				Action: create,
			},
			{
				Name:   "info",
				Usage:  "print geometry, producer position, consumer cursors, lag and drops",
				Flags:  cliutil.Env("ring", []cli.Flag{configFlag, &cli.StringFlag{Name: "ring", Usage: "ring file"}, &cli.BoolFlag{Name: "json", Usage: "JSON for programs"}}, ringKeys),
				Action: info,
			},
			{
				Name:  "destroy",
				Usage: "remove a ring (refused while a process is attached)",
				Flags: cliutil.Env("ring", []cli.Flag{configFlag, &cli.StringFlag{Name: "ring", Usage: "ring file"}}, ringKeys),
				Action: func(cc *cli.Context) error {
					if err := ringFlag(cc, true); err != nil {
						return err
					}
					return cliutil.RingMissing(cc.String("ring"), shmring.Remove(cc.String("ring")))
				},
			},
		},
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "fmring:", err)
		os.Exit(1)
	}
}

// The flags' keys in the ring: section, where they are named otherwise
// (and so their variables: FMCAP_RING_PATH, FMCAP_RING_CONSUMERS).
var ringKeys = map[string]string{"ring": "ring.path", "consumer": "ring.consumers"}

var configFlag = &cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: its ring: section (path, size, consumers, max_caplen, first_seq) gives what the flags do not"}

// ringFlag applies the configuration file's ring section; only create
// uses more of it than the path.
func ringFlag(cc *cli.Context, pathOnly bool) error {
	rename := map[string]string{"path": "ring", "consumers": "consumer"}
	if pathOnly {
		rename = map[string]string{"path": "ring", "consumers": "", "size": "", "max_caplen": "", "first_seq": ""}
	}
	if err := cliutil.ApplyConfig(cc, "ring", rename); err != nil {
		return err
	}
	if cc.String("ring") == "" {
		return fmt.Errorf("--ring PATH is required (or ring.path in --config)")
	}
	return nil
}

func create(cc *cli.Context) error {
	if err := ringFlag(cc, false); err != nil {
		return err
	}
	if len(cc.StringSlice("consumer")) == 0 {
		return fmt.Errorf("declare at least one --consumer NAME:lossless|lossy (or ring.consumers in --config)")
	}
	size, err := cliutil.ParseSize(cc.String("size"))
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	cfg := shmring.Config{DataSize: size, MaxCaplen: uint32(cc.Uint("max-caplen")), FirstSeq: cc.Uint64("first-seq")}
	for _, s := range cc.StringSlice("consumer") {
		name, mode, ok := strings.Cut(s, ":")
		var m shmring.ConsumerMode
		switch mode {
		case "lossless":
			m = shmring.Lossless
		case "lossy":
			m = shmring.Lossy
		default:
			ok = false
		}
		if !ok {
			return fmt.Errorf("--consumer %q: give NAME:lossless or NAME:lossy", s)
		}
		cfg.Consumers = append(cfg.Consumers, shmring.ConsumerSpec{Name: name, Mode: m})
	}
	path := cc.String("ring")
	if cc.Bool("exist-ok") {
		if r, err := shmring.Open(path); err == nil {
			defer r.Close()
			return sameRing(r, cfg)
		}
	}
	return shmring.Create(path, cfg)
}

// sameRing accepts an existing ring for --exist-ok only when it is the one
// asked for; a ring of another geometry is an error, never replaced.
func sameRing(r *shmring.Ring, cfg shmring.Config) error {
	in := r.Info()
	same := in.DataSize == cfg.DataSize && (cfg.MaxCaplen == 0 || in.MaxCaplen == cfg.MaxCaplen) && len(in.Consumers) == len(cfg.Consumers)
	for i := 0; same && i < len(cfg.Consumers); i++ {
		same = in.Consumers[i].Name == cfg.Consumers[i].Name && in.Consumers[i].Mode == cfg.Consumers[i].Mode
	}
	if !same {
		return fmt.Errorf("ring %s exists with another geometry or consumers (fmring info shows it; fmring destroy, then create, to change it)", r.Path())
	}
	return nil
}

func info(cc *cli.Context) error {
	if err := ringFlag(cc, true); err != nil {
		return err
	}
	r, err := shmring.Open(cc.String("ring"))
	if err != nil {
		return cliutil.RingMissing(cc.String("ring"), err)
	}
	defer r.Close()
	in := r.Info()
	if cc.Bool("json") {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(in)
	}
	fmt.Printf("ring        %s\n", in.Path)
	fmt.Printf("id          %016x  version %d  created %s\n", in.ID, in.Version, in.Created.UTC().Format("2006-01-02T15:04:05Z"))
	fmt.Printf("geometry    data %d bytes, max caplen %d, first seq %d\n", in.DataSize, in.MaxCaplen, in.FirstSeq)
	state := "open"
	if in.Closed {
		state = "closed"
	}
	fmt.Printf("producer    pid %d, %s, head %d, next seq %d, written %d, drops %d (%d bytes)\n",
		in.ProducerPID, state, in.Head, in.NextSeq, in.Written, in.Drops, in.DropBytes)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "consumer\tmode\tpid\tcursor\tnext seq\tlag records\tlag bytes\tdelivered\toverruns\tmissed\tlast missed")
	for _, c := range in.Consumers {
		last := "-"
		if c.Missed > 0 {
			last = fmt.Sprintf("%d..%d", c.LastMissLo, c.LastMissHi)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", c.Name, c.Mode, c.PID, c.Cursor, c.CursorSeq,
			c.LagRecords, c.LagBytes, c.Delivered, c.Overruns, c.Missed, last)
	}
	return tw.Flush()
}
