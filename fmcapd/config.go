package fmcapd

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Config is the fmcapd section of the configuration file, after flags and
// environment (cmd/fmcapd).
type Config struct {
	Listen        string        `yaml:"listen"`   // default 127.0.0.1:8443
	Stores        []string      `yaml:"stores"`   // NAME=DIR, DIR (named by its base), NAME=s3://BUCKET/PREFIX/NODE; the first is the default
	Cache         string        `yaml:"cache"`    // s3:// stores: fmslice's --cache (default: its own, under $HOME/.cache)
	FMSlice       string        `yaml:"fmslice"`  // the fmslice binary; default: beside fmcapd, else PATH
	TLSCert       string        `yaml:"tls_cert"` // PEM; none: plain HTTP, loopback only
	TLSKey        string        `yaml:"tls_key"`
	ClientCA      string        `yaml:"client_ca"` // PEM bundle of the CAs whose client certificates are accepted
	Tokens        []string      `yaml:"tokens"`    // NAME:SHA256HEX of a bearer token
	MaxConcurrent int           `yaml:"max_concurrent"`
	MaxRange      time.Duration `yaml:"max_range"` // 0: no limit (fmcapd's flag defaults to DefaultMaxRange)
	MaxBytes      int64         `yaml:"max_bytes"`
	QueryTimeout  time.Duration `yaml:"query_timeout"`
	AuditLog      string        `yaml:"audit_log"` // file (appended, 0640); default: standard error
	// ShutdownGrace is how long running queries may go on after SIGTERM
	// before they are cancelled (0: cancelled at once; fmcapd's flag
	// defaults to DefaultShutdownGrace).
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Defaults.
const (
	DefaultListen        = "127.0.0.1:8443"
	DefaultMaxConcurrent = 4
	DefaultMaxRange      = 24 * time.Hour
	DefaultQueryTimeout  = 10 * time.Minute
	DefaultShutdownGrace = 30 * time.Second
)

// store is a served store: dir is fmslice's --store, a directory or an
// s3:// URL.
type store struct{ name, dir string }

// remote says whether the store is in object storage.
func (s store) remote() bool { return strings.HasPrefix(s.dir, "s3://") }

// token is an accepted bearer token, by the SHA-256 of its text.
type token struct {
	name string
	sum  [sha256.Size]byte
}

// checked is a Config made ready to serve.
type checked struct {
	Config
	stores   []store
	tokens   []token
	tls      *tls.Config // nil: plain HTTP
	clientCA *x509.CertPool
	loopback bool
}

func (c *Config) check() (*checked, error) {
	k := &checked{Config: *c}
	if k.Listen == "" {
		k.Listen = DefaultListen
	}
	host, _, err := net.SplitHostPort(k.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %q: HOST:PORT, e.g. 127.0.0.1:8443", k.Listen)
	}
	ip := net.ParseIP(host)
	k.loopback = host == "localhost" || ip != nil && ip.IsLoopback()
	if k.MaxConcurrent == 0 {
		k.MaxConcurrent = DefaultMaxConcurrent
	}
	if k.QueryTimeout == 0 {
		k.QueryTimeout = DefaultQueryTimeout
	}
	if k.MaxConcurrent < 0 || k.MaxRange < 0 || k.QueryTimeout < 0 || k.MaxBytes < 0 || k.ShutdownGrace < 0 {
		return nil, errors.New("max_concurrent, max_range, query_timeout, max_bytes and shutdown_grace cannot be negative")
	}
	if len(k.Stores) == 0 {
		return nil, errors.New("no store: give stores: [DIR] (or --store)")
	}
	names := map[string]bool{}
	for _, s := range k.Stores {
		name, dir, ok := strings.Cut(s, "=")
		if !ok {
			dir = s
			name = lastElem(dir)
		}
		if name == "" || dir == "" || names[name] {
			return nil, fmt.Errorf("store %q: NAME=DIR, DIR or NAME=s3://BUCKET/PREFIX/NODE, each name once", s)
		}
		if bucket, _, _ := strings.Cut(strings.TrimPrefix(dir, "s3://"), "/"); strings.HasPrefix(dir, "s3://") {
			if bucket == "" {
				return nil, fmt.Errorf("store %q: an s3:// store names its bucket: NAME=s3://BUCKET/PREFIX/NODE", s)
			}
		} else if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("store %s: %s is not a directory", name, dir)
		}
		names[name] = true
		k.stores = append(k.stores, store{name, dir})
	}
	for _, t := range k.Tokens {
		name, sum, ok := strings.Cut(t, ":")
		b, err := hex.DecodeString(sum)
		if !ok || name == "" || err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("token %q: NAME:SHA256 (the hex SHA-256 of the token, e.g. from `printf %%s TOKEN | sha256sum`)", elide(t))
		}
		k.tokens = append(k.tokens, token{name, [sha256.Size]byte(b)})
	}
	if (k.TLSCert == "") != (k.TLSKey == "") {
		return nil, errors.New("tls_cert and tls_key go together")
	}
	if k.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCert, k.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		// Client certificates (below, with client_ca) are checked by the
		// handler (auth.go), so that a refusal is an HTTP answer with its
		// reason, and audited, rather than a failed handshake.
		k.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if !k.loopback {
		return nil, fmt.Errorf("listen %s: not a loopback address, and no tls_cert: fmcapd serves other hosts over TLS only", k.Listen)
	}
	if k.ClientCA != "" {
		if k.tls == nil {
			return nil, errors.New("client_ca without tls_cert: client certificates need TLS")
		}
		pem, err := os.ReadFile(k.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client_ca: %w", err)
		}
		k.clientCA = x509.NewCertPool()
		if !k.clientCA.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca %s: no PEM certificate in it", k.ClientCA)
		}
		// Asked for (the CAs named, so a browser offers the right one) but
		// not required at the handshake: a token may do instead.
		k.tls.ClientAuth, k.tls.ClientCAs = tls.RequestClientCert, k.clientCA
	}
	if k.clientCA == nil && len(k.tokens) == 0 && !k.loopback {
		return nil, fmt.Errorf("listen %s: not a loopback address, and neither client_ca nor tokens: anyone could query", k.Listen)
	}
	return k, nil
}

func lastElem(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// elide keeps a secret-looking value out of messages.
func elide(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}
