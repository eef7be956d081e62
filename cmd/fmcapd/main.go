// Command fmcapd serves fmcap stores over HTTPS (package fmcapd says how):
// pcap, flows, timeline and info answers as fmslice gives them, to clients
// with a certificate or a token. This file is only flags, logger, signals
// and wiring.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/fmcapd"
	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/version"
)

func main() {
	app := &cli.App{
		Name:  "fmcapd",
		Usage: "serve fmcap stores over HTTPS: pcap, flows, timeline, info",
		Flags: cliutil.Env("fmcapd", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: settings not given as flags or FMCAP_FMCAPD_* variables come from its fmcapd: section"},
			&cli.StringFlag{Name: "listen", Value: fmcapd.DefaultListen, Usage: "HOST:PORT; a non-loopback address needs TLS and client_ca or tokens"},
			&cli.StringSliceFlag{Name: "store", Usage: "a store to serve, DIR, NAME=DIR or NAME=s3://BUCKET/PREFIX/NODE (repeat; the first is the default)"},
			&cli.StringFlag{Name: "cache", Usage: "s3:// stores: the directory of fmslice's object-store cache (default: fmslice's, under $HOME/.cache)"},
			&cli.StringFlag{Name: "fmslice", Usage: "the fmslice binary (default: beside fmcapd, else on PATH)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "server certificate (PEM)"},
			&cli.StringFlag{Name: "tls-key", Usage: "server key (PEM)"},
			&cli.StringFlag{Name: "client-ca", Usage: "CA bundle (PEM) whose client certificates are accepted"},
			&cli.StringSliceFlag{Name: "token", Usage: "NAME:SHA256 of an accepted bearer token (repeat)"},
			&cli.IntFlag{Name: "max-concurrent", Value: fmcapd.DefaultMaxConcurrent, Usage: "queries at once per client"},
			&cli.DurationFlag{Name: "max-range", Value: fmcapd.DefaultMaxRange, Usage: "longest time range of one query (0: no limit)"},
			&cli.Int64Flag{Name: "max-bytes", Usage: "largest answer in bytes (0: no limit; a longer one is cut and flagged)"},
			&cli.DurationFlag{Name: "query-timeout", Value: fmcapd.DefaultQueryTimeout, Usage: "longest time one query may run"},
			&cli.DurationFlag{Name: "shutdown-grace", Value: fmcapd.DefaultShutdownGrace, Usage: "on SIGTERM, how long running queries may go on before they are cut (flagged incomplete); 0: cut at once"},
			&cli.StringFlag{Name: "audit-log", Usage: "file the audit lines are appended to (default: standard error)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		}, nil),
		Commands: []*cli.Command{{
			Name:  "certs",
			Usage: "write a demo CA, a server certificate and a client certificate into a directory",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Required: true, Usage: "directory for ca.pem, server.pem, server-key.pem, client.pem, client-key.pem"},
				&cli.StringSliceFlag{Name: "host", Value: cli.NewStringSlice("127.0.0.1", "localhost"), Usage: "the server's addresses and names"},
				&cli.StringFlag{Name: "client", Value: "analyst", Usage: "the client certificate's name"},
			},
			Action: func(cc *cli.Context) error {
				return fmcapd.WriteDemoPKI(cc.String("dir"), cc.StringSlice("host"), cc.String("client"))
			},
		}},
		Action: func(cc *cli.Context) error {
			if err := cliutil.ApplyConfig(cc, "fmcapd", nil); err != nil {
				return err
			}
			log, err := cliutil.Logger(cc.String("log-level"))
			if err != nil {
				return err
			}
			s, err := fmcapd.New(fmcapd.Config{
				Listen: cc.String("listen"), Stores: cc.StringSlice("store"), FMSlice: cc.String("fmslice"), Cache: cc.String("cache"),
				TLSCert: cc.String("tls-cert"), TLSKey: cc.String("tls-key"), ClientCA: cc.String("client-ca"),
				Tokens: cc.StringSlice("token"), MaxConcurrent: cc.Int("max-concurrent"), MaxRange: cc.Duration("max-range"),
				MaxBytes: cc.Int64("max-bytes"), QueryTimeout: cc.Duration("query-timeout"), AuditLog: cc.String("audit-log"),
				ShutdownGrace: cc.Duration("shutdown-grace"),
			}, log, os.Stderr)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return s.Serve(ctx, nil)
		},
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "fmcapd:", err)
		os.Exit(1)
	}
}
