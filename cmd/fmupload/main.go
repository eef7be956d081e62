// Command fmupload tiers a store to S3-compatible object storage: the
// writer's finished chunks and the indexer's segments go to
// s3://BUCKET/PREFIX/NODE/ under their local names, each checked by its
// CRC-32C, and STORE/uploaded records what is safely there, so that the
// writer's retention (the hot window) removes only uploaded chunks. The
// job is store/tier's, its engine store.Uploader (store/upload.go says how
// it is crash-safe); the object store client is store/objstore. This file
// is only flags, settings, logger, signals and wiring. It is a process of its own
// so that an upload never competes with the writer's loop, a slow or
// absent object store never reaches capture, and the writer carries no
// S3 client.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	"github.com/fmcap/fmcap/internal/fsmode"
	"github.com/fmcap/fmcap/internal/version"
	"github.com/fmcap/fmcap/store/objstore"
	"github.com/fmcap/fmcap/store/tier"
)

func main() {
	host, _ := os.Hostname()
	app := &cli.App{
		Name:  "fmupload",
		Usage: "upload a store's finished chunks and index segments to S3-compatible object storage",
		Description: "Credentials, region and endpoint come from the standard AWS chain (AWS_ACCESS_KEY_ID,\n" +
			"AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_PROFILE,\n" +
			"the shared config files, the instance role) unless the upload: section of --config sets them\n" +
			"(access_key_id, secret_access_key and session_token only there, never as flags).",
		Flags: cliutil.Env("upload", []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "the fmcap configuration file: settings not given as flags or FMCAP_UPLOAD_* come from its upload: section"},
			&cli.StringFlag{Name: "store", Usage: "the writer's store directory (required)"},
			&cli.StringFlag{Name: "bucket", Usage: "the bucket (required)"},
			&cli.StringFlag{Name: "prefix", Usage: "key prefix in the bucket; objects go under PREFIX/NODE/"},
			&cli.StringFlag{Name: "node", Value: host, Usage: "this capture node's name in the bucket"},
			&cli.StringFlag{Name: "endpoint", Usage: "a non-AWS server's URL (MinIO, versitygw, Ceph): path-style addressing"},
			&cli.StringFlag{Name: "region", Usage: "the region (default AWS_REGION, the profile's, or us-east-1 with an endpoint)"},
			&cli.StringFlag{Name: "profile", Usage: "a profile of the shared AWS config files"},
			&cli.BoolFlag{Name: "path-style", Usage: "path-style addressing on AWS's endpoints too"},
			&cli.StringFlag{Name: "part-size", Value: "16MiB", Usage: "multipart part size (objects up to it go in one PUT; at least 5MiB)"},
			&cli.BoolFlag{Name: "sign-payload", Usage: "sign every uploaded byte (SHA-256) too, not only the headers with the CRC-32C the server checks the body against; default: over plain HTTP yes, over HTTPS no (--sign-payload=false: a plain-HTTP path you trust)"},
			&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "parts in flight per object"},
			&cli.IntFlag{Name: "parallel", Value: 2, Usage: "chunks uploaded at once"},
			&cli.DurationFlag{Name: "poll", Value: time.Second, Usage: "how often the store is looked at for new chunks"},
			&cli.DurationFlag{Name: "retry-for", Value: time.Minute, Usage: "how long one part is retried before its chunk is retried whole"},
			&cli.DurationFlag{Name: "bucket-retain-age", Usage: "delete from the bucket the chunks whose newest packet is older than this, and their index segments, each chunk recorded first under retention/ so that fmslice says what is gone (0: keep them, or leave them to bucket lifecycle rules); needs s3:DeleteObject"},
			&cli.BoolFlag{Name: "once", Usage: "upload what is finished now (and apply --bucket-retain-age), then exit (0: all uploaded)"},
			&cli.StringFlag{Name: "metrics", Value: "127.0.0.1:9564", Usage: "serve Prometheus metrics on this address (\"\" for none)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		}, nil),
		Action: run,
	}
	version.Setup(app)
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "fmupload:", err)
		os.Exit(1)
	}
}

// secrets are keys of the upload: section that are no flags: a flag's
// value shows in ps.
var secrets = map[string]string{"access_key_id": "", "secret_access_key": "", "session_token": ""}

func run(cc *cli.Context) error {
	if err := cliutil.ApplyConfig(cc, "upload", secrets); err != nil {
		return err
	}
	log, err := cliutil.Logger(cc.String("log-level"))
	if err != nil {
		return err
	}
	dir := cc.String("store")
	if dir == "" {
		return fmt.Errorf("--store DIR is required (or upload.store in --config)")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--store %s: not a store directory (%v)", dir, err)
	}
	if cc.String("bucket") == "" {
		return fmt.Errorf("--bucket is required (or upload.bucket in --config)")
	}
	if cc.String("node") == "" {
		return fmt.Errorf("--node is required: the hostname is unknown")
	}
	if cc.Duration("bucket-retain-age") < 0 {
		return fmt.Errorf("--bucket-retain-age %v: 0 (keep) or a positive duration, e.g. 2160h for 90 days", cc.Duration("bucket-retain-age"))
	}
	part, err := cliutil.ParseSize(cc.String("part-size"))
	if err != nil {
		return fmt.Errorf("--part-size: %w", err)
	}
	source := "the command line (--bucket, --endpoint, ...) or FMCAP_UPLOAD_*"
	cfg := objstore.Config{
		Bucket: cc.String("bucket"), Prefix: joinKey(cc.String("prefix"), cc.String("node")),
		Endpoint: cc.String("endpoint"), Region: cc.String("region"), Profile: cc.String("profile"),
		PathStyle: cc.Bool("path-style"), PartSize: int64(part), Concurrency: cc.Int("concurrency"),
		RetryFor: cc.Duration("retry-for"),
	}
	if cc.IsSet("sign-payload") {
		v := cc.Bool("sign-payload")
		cfg.SignPayload = &v
	}
	if path := cc.String("config"); path != "" {
		source = path + " (upload:), or the command line"
		for key, p := range map[string]*string{"access_key_id": &cfg.AccessKeyID, "secret_access_key": &cfg.SecretAccessKey, "session_token": &cfg.SessionToken} {
			v, ok, err := cliutil.ConfigValue(path, "upload", key)
			if err != nil {
				return err
			}
			if ok {
				*p = v
			}
		}
	}
	cfg.Source = source
	fsmode.SetUmask()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	b, err := objstore.NewBackend(ctx, cfg, nil, log)
	if err != nil {
		return err
	}
	return tier.Run(ctx, b, tier.Options{Dir: dir, Parallel: cc.Int("parallel"), Poll: cc.Duration("poll"),
		Once: cc.Bool("once"), Metrics: cc.String("metrics"), Log: log, BucketRetainAge: cc.Duration("bucket-retain-age")})
}

func joinKey(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "/" + b
}
