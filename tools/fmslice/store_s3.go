//go:build !fmslice_nos3

package main

// The S3 client: linked into the fmslice that go build and go test make.
// make build links it only into fmslice-s3, which a local-only fmslice
// runs in its place for s3:// stores (store_nos3.go): the AWS SDK's package
// initialisers cost every run about 1.5 ms and 160 page faults before
// main (perf stat of fmslice --version with and without it), of a
// one-minute slice's 20-30 ms (bench/slice.sh).

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/fmcap/fmcap/internal/cliutil"
	fmstore "github.com/fmcap/fmcap/store"
	"github.com/fmcap/fmcap/store/objstore"
)

// s3Elsewhere is store_nos3.go's: this build reads s3:// stores itself.
func s3Elsewhere([]string) {
	os.Unsetenv(handoverVar) // set by a local-only fmslice that execed this one
}

// openRemote opens q.store when it is an s3:// URL (nil, nil otherwise)
// and lists its chunks.
func openRemote(cc *cli.Context, loc string) (*remoteStore, error) {
	cfg, ok, err := objstore.ParseURL(loc, objstore.Config{})
	if !ok || err != nil {
		return nil, err
	}
	if cfg, err = remoteConfig(cc.String("config"), cfg); err != nil {
		return nil, err
	}
	cfg.Source = "--store " + loc + cfg.Source
	maxBytes := int64(objstore.DefaultCacheBytes)
	if s := cc.String("cache-bytes"); s != "" {
		if maxBytes, err = strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("--cache-bytes %q: a number of bytes", s)
		}
	}
	cache, err := objstore.CacheFor(cc.String("cache"), cfg.Bucket, cfg.Prefix, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("cache for %s: %w", loc, err)
	}
	cache.Trim()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := objstore.NewBackend(ctx, cfg, cache, log)
	if err != nil {
		return nil, err
	}
	r := &remoteStore{b: b}
	if r.list, err = fmstore.ListChunks(ctx, b); err != nil {
		return nil, err
	}
	if len(r.list) == 0 {
		return nil, fmt.Errorf("store %s holds no chunks (is fmupload running, and is this its bucket, prefix and node?)", loc)
	}
	return r, nil
}

// remoteConfig takes the object store's settings the upload: section of
// the configuration file gives (path "": none).
func remoteConfig(path string, cfg objstore.Config) (objstore.Config, error) {
	str := map[string]*string{"endpoint": &cfg.Endpoint, "region": &cfg.Region, "profile": &cfg.Profile,
		"access_key_id": &cfg.AccessKeyID, "secret_access_key": &cfg.SecretAccessKey, "session_token": &cfg.SessionToken}
	for key, p := range str {
		v, ok, err := cliutil.ConfigValue(path, "upload", key)
		if err != nil {
			return cfg, err
		}
		if ok {
			*p = v
		}
	}
	if v, ok, err := cliutil.ConfigValue(path, "upload", "path_style"); err != nil {
		return cfg, err
	} else if ok {
		cfg.PathStyle = v == "true"
	}
	if path != "" {
		cfg.Source = " and " + path + " (upload:)"
	}
	return cfg, nil
}
