package objstore

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Config says where the objects go and how to reach them. Every field may
// be left empty: the standard AWS chain (environment, shared config and
// credentials files, SSO, web identity, the instance role) then decides,
// as for the aws CLI. A field that is set overrides the chain.
//
// The yaml keys are the names that error messages use for the settings.
type Config struct {
	Bucket string `yaml:"bucket"` // required
	// Prefix is put before every key (s3://BUCKET/PREFIX/KEY); a missing
	// trailing slash is added.
	Prefix string `yaml:"prefix"`
	// Region overrides AWS_REGION and the profile's region. With a custom
	// endpoint and no region anywhere, us-east-1 is used (what S3-compatible
	// servers expect by default).
	Region string `yaml:"region"`
	// Endpoint is a non-AWS server's URL (http://host:port); it overrides
	// AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL. Any custom endpoint, from
	// here or from the environment, is addressed path-style.
	Endpoint string `yaml:"endpoint"`
	// PathStyle forces path-style addressing (https://host/BUCKET/KEY) on
	// AWS's own endpoints too.
	PathStyle bool `yaml:"path_style"`
	// Profile picks a profile of the shared config files (as AWS_PROFILE).
	Profile string `yaml:"profile"`
	// Static credentials, overriding the chain when AccessKeyID is set.
	// Never logged, never in an error.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`

	// PartSize is the multipart part size: objects up to it are sent with
	// one PUT, larger ones in parts of this size. Default 16 MiB; at least
	// 5 MiB (S3's minimum) and at most 10 000 parts an object.
	PartSize int64 `yaml:"part_size"`
	// Concurrency is how many parts (and ranges, for readers) are in
	// flight at once. Default 4. Memory for uploads: (Concurrency+1) ×
	// PartSize, because a stream is read into whole parts before sending.
	Concurrency int `yaml:"concurrency"`
	// SignPayload makes SigV4 sign the bytes of every upload too
	// (x-amz-content-sha256: their SHA-256). Unset (nil), they are signed
	// when the endpoint is plain HTTP and not over HTTPS, as the AWS SDK
	// does by default. Unsigned, a PUT or a part goes as UNSIGNED-PAYLOAD:
	// the signature still covers its headers, among them the body's
	// CRC-32C, which the server checks against the bytes it receives, so
	// corruption on the way is refused either way; what signing adds is
	// protection from an active attacker on a plain-HTTP path, who could
	// forge a body with the same CRC, and HTTPS gives that already. false
	// over plain HTTP is for a path you trust (a server on the same host):
	// the SHA-256, computed by the client and again by the server, was a
	// third of fmupload's CPU (objstore's package doc).
	SignPayload *bool `yaml:"sign_payload"`
	// RetryFor is how long a part or the completion of an upload is retried
	// after a network error or a 5xx (a server restart, a load balancer
	// failing over) before Put gives up and aborts the upload. Default 1 min.
	RetryFor time.Duration `yaml:"retry_for"`

	// Source names where this configuration was read (a file and
	// section), for error messages: "endpoint in /etc/fmcap/fmcap.yaml
	// (objstore:)". Empty means "the config file".
	Source string `yaml:"-"`
}

const (
	minPartSize     = 5 << 20 // S3's minimum for all but the last part
	defaultPartSize = 16 << 20
	maxParts        = 10000
	defaultConc     = 4
	defaultRetryFor = time.Minute
)

func (c Config) withDefaults() (Config, error) {
	if c.Bucket == "" {
		return c, fmt.Errorf("objstore: no bucket: set bucket in %s", c.source())
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	c.Prefix = strings.TrimPrefix(c.Prefix, "/")
	if c.PartSize == 0 {
		c.PartSize = defaultPartSize
	}
	if c.PartSize < minPartSize {
		return c, fmt.Errorf("objstore: part_size %d in %s is below S3's minimum of 5 MiB", c.PartSize, c.source())
	}
	if c.Concurrency <= 0 {
		c.Concurrency = defaultConc
	}
	if c.RetryFor <= 0 {
		c.RetryFor = defaultRetryFor
	}
	if c.AccessKeyID != "" && c.SecretAccessKey == "" || c.AccessKeyID == "" && c.SecretAccessKey != "" {
		return c, fmt.Errorf("objstore: access_key_id and secret_access_key in %s go together: set both or neither", c.source())
	}
	return c, nil
}

func (c Config) source() string {
	if c.Source == "" {
		return "the config file"
	}
	return c.Source
}

// signPayload is SignPayload, or when unset whether endpoint, the one in
// force (from this configuration, the environment, or the shared AWS
// config's endpoint_url, as the SDK resolved it; "" for AWS's own, which
// is HTTPS), is plain HTTP.
func (c Config) signPayload(endpoint string) bool {
	if c.SignPayload != nil {
		return *c.SignPayload
	}
	return len(endpoint) >= 7 && strings.EqualFold(endpoint[:7], "http://")
}

// endpoint is the custom endpoint in force and the setting it comes from,
// or "" for AWS's own. The SDK reads the same variables itself; this copy
// is for path-style addressing and for naming the setting in errors.
func (c Config) endpoint() (url, setting string) {
	switch {
	case c.Endpoint != "":
		return c.Endpoint, "endpoint in " + c.source()
	case os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") == "true":
		return "", ""
	case os.Getenv("AWS_ENDPOINT_URL_S3") != "":
		return os.Getenv("AWS_ENDPOINT_URL_S3"), "AWS_ENDPOINT_URL_S3"
	case os.Getenv("AWS_ENDPOINT_URL") != "":
		return os.Getenv("AWS_ENDPOINT_URL"), "AWS_ENDPOINT_URL"
	}
	return "", ""
}

const redacted = "[redacted]"

// String keeps secrets out of %v and %+v (a Config printed in a log line or
// a panic).
func (c Config) String() string {
	r := c
	if r.AccessKeyID != "" {
		r.AccessKeyID = keyHint(r.AccessKeyID)
	}
	if r.SecretAccessKey != "" {
		r.SecretAccessKey = redacted
	}
	if r.SessionToken != "" {
		r.SessionToken = redacted
	}
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(r))
}

// GoString does the same for %#v.
func (c Config) GoString() string { return "objstore.Config" + c.String() }

// LogValue keeps secrets out of slog.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.String("endpoint", c.Endpoint),
		slog.Bool("path_style", c.PathStyle),
		slog.String("profile", c.Profile),
		slog.String("access_key_id", keyHint(c.AccessKeyID)),
		slog.Bool("secret_access_key_set", c.SecretAccessKey != ""),
	)
}

// keyHint shows the first four characters of an access key ID, enough to
// tell two keys apart in a message without printing the key. (An access
// key ID is not a secret for AWS, but it is half of a credential.)
func keyHint(id string) string {
	if id == "" {
		return ""
	}
	if len(id) <= 4 {
		return "****"
	}
	return id[:4] + "****"
}
