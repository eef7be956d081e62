package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fmcap/fmcap/internal/s3test"
)

// isolate keeps the developer's own AWS setup (~/.aws, AWS_* variables, an
// instance role) out of a test: only what the test sets is in force.
func isolate(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func testConfig(srv *s3test.Server) Config {
	return Config{
		Bucket:          srv.Bucket,
		Prefix:          "fleet/node1",
		Endpoint:        srv.Endpoint,
		Region:          srv.Region,
		AccessKeyID:     srv.AccessKey,
		SecretAccessKey: srv.SecretKey,
		PartSize:        minPartSize, // 5 MiB: the sizes below cross it
		RetryFor:        time.Second, // the fault tests need no long retries
		Source:          "test.yaml (objstore:)",
	}
}

// setup starts a server and a Store on it, with the test's AWS setup only;
// edit, if not nil, changes the configuration first.
func setup(t *testing.T, edit func(*Config)) (*s3test.Server, *Store) {
	t.Helper()
	isolate(t)
	srv := s3test.Start(t)
	cfg := testConfig(srv)
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return srv, s
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	srv, s := setup(t, nil)
	ctx := context.Background()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	const mib = 1 << 20
	for i, size := range []int{0, 1, 5*mib - 1, 5*mib + 1, 70 * mib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := randomBytes(uint64(i+1), size)
			key := fmt.Sprintf("chunks/%d.zst", size)
			put, err := s.Put(ctx, key, bytes.NewReader(data), int64(size))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			st, err := s.Stat(ctx, key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if st.Size != int64(size) || st.CRC32C != put.CRC32C {
				t.Errorf("Stat: got size %d crc %q, want %d %q", st.Size, st.CRC32C, size, put.CRC32C)
			}
			got, err := s.GetRange(ctx, key, 0, int64(size))
			if err != nil {
				t.Fatalf("GetRange whole: %v", err)
			}
			if g, w := sha256.Sum256(got), sha256.Sum256(data); g != w {
				t.Fatalf("SHA-256 of what was read back: got %x want %x (%d bytes read)", g, w, len(got))
			}
		})
	}
	// The prefix is in the bucket's layout, and List gives keys without it.
	infos, err := s.List(ctx, "chunks/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(infos) != 5 {
		t.Errorf("List: got %d objects %v, want 5", len(infos), infos)
	}
	if _, err := s.Stat(ctx, "chunks/0.zst"); err != nil {
		t.Errorf("Stat: %v", err)
	}
	raw, err := filepath.Glob(filepath.Join(srv.Dir, srv.Bucket, "fleet", "node1", "chunks", "*"))
	if err != nil || len(raw) != 5 {
		t.Errorf("objects under s3://%s/fleet/node1/chunks/ on the server's disk: got %v (%v), want 5", srv.Bucket, raw, err)
	}
	if err := s.Delete(ctx, "chunks/1.zst"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, "chunks/1.zst"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: got %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "chunks/1.zst"); err != nil {
		t.Errorf("Delete of an absent key: got %v, want nil", err)
	}
}

func TestPutSizeMismatch(t *testing.T) {
	_, s := setup(t, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		have, say int
	}{
		{"single short", 100, 200},
		{"single long", 200, 100},
		{"multipart short", 6 << 20, 11 << 20},
		{"multipart long", 11 << 20, 6 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "bad/" + strings.ReplaceAll(tc.name, " ", "-")
			_, err := s.Put(ctx, key, bytes.NewReader(randomBytes(7, tc.have)), int64(tc.say))
			if err == nil {
				t.Fatalf("Put of %d bytes said to be %d: no error", tc.have, tc.say)
			}
			if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Errorf("after a failed Put: Stat got %v, want ErrNotFound", err)
			}
		})
	}
	if n, err := s.AbortIncomplete(ctx, "", 0); err != nil || n != 0 {
		t.Errorf("failed Puts left %d uploads behind (%v), want 0: they abort their own", n, err)
	}
}

func TestGetRangeEdges(t *testing.T) {
	_, s := setup(t, nil)
	ctx := context.Background()
	const size = 1<<20 + 7
	data := randomBytes(42, size)
	if _, err := s.Put(ctx, "obj", bytes.NewReader(data), size); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off, n int64
		short  bool
	}{
		{0, 0, false},
		{0, 1, false},
		{size - 1, 1, false},
		{size - 32<<10, 32 << 10, false},
		{12345, 32 << 10, false},
		{0, size, false},
		{size, 1, true},        // starts at the end
		{size - 2, 5, true},    // runs past the end
		{size + 100, 10, true}, // starts past the end
	} {
		got, err := s.GetRange(ctx, "obj", tc.off, tc.n)
		if tc.short {
			if !errors.Is(err, ErrShort) {
				t.Errorf("GetRange(%d, %d): got %v, want ErrShort", tc.off, tc.n, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", tc.off, tc.n, err)
			continue
		}
		if !bytes.Equal(got, data[tc.off:tc.off+tc.n]) {
			t.Errorf("GetRange(%d, %d): %d bytes, not the object's", tc.off, tc.n, len(got))
		}
	}
	if _, err := s.GetRange(ctx, "absent", 0, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRange of an absent key: got %v, want ErrNotFound", err)
	}
}

// An upload begun and not completed (a writer that crashed mid-chunk) is
// not an object: List and Stat do not see it, AbortIncomplete removes it.
func TestListExcludesIncompleteUpload(t *testing.T) {
	srv, s := setup(t, nil)
	ctx := context.Background()
	if _, err := s.Put(ctx, "chunks/a", bytes.NewReader([]byte("complete")), 8); err != nil {
		t.Fatal(err)
	}
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(srv.Bucket), Key: aws.String(s.full("chunks/b")),
	})
	if err != nil {
		t.Fatal(err)
	}
	part := randomBytes(3, minPartSize)
	if _, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(srv.Bucket), Key: aws.String(s.full("chunks/b")), UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
	}); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx, "chunks/")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Key != "chunks/a" || infos[0].Size != 8 {
		t.Errorf("List with an upload in progress: got %+v, want only chunks/a of 8 bytes", infos)
	}
	if _, err := s.Stat(ctx, "chunks/b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat of an incomplete upload: got %v, want ErrNotFound", err)
	}
	if n, err := s.AbortIncomplete(ctx, "chunks/", time.Hour); err != nil || n != 0 {
		t.Errorf("AbortIncomplete(older than 1h): got %d, %v; want 0 (the upload is new)", n, err)
	}
	if n, err := s.AbortIncomplete(ctx, "chunks/", 0); err != nil || n != 1 {
		t.Errorf("AbortIncomplete: got %d, %v; want 1", n, err)
	}
	left, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Uploads) != 0 {
		t.Errorf("uploads left after AbortIncomplete: %d", len(left.Uploads))
	}
}

// hookReader calls hook once, the first time the reader has given at least
// at bytes.
type hookReader struct {
	r    io.Reader
	n    int64
	at   int64
	hook func()
	once sync.Once
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n >= h.at {
		h.once.Do(h.hook)
	}
	n, err := h.r.Read(p)
	h.n += int64(n)
	return n, err
}

// The server dies in the middle of a multipart upload (parts in flight)
// and comes back 2 s later on the same directory and port: Put retries,
// completes, and the object is whole.
func TestPutSurvivesServerRestart(t *testing.T) {
	srv, s := setup(t, func(c *Config) { c.RetryFor = 30 * time.Second })
	ctx := context.Background()
	const size = 70 << 20
	data := randomBytes(99, size)
	restarted := make(chan error, 1)
	r := &hookReader{r: bytes.NewReader(data), at: 4 * minPartSize, hook: func() {
		srv.Kill() // parts 1-4 are in flight or done
		go func() {
			time.Sleep(2 * time.Second)
			restarted <- srv.Start()
		}()
	}}
	before := ownGoroutines()
	put, err := s.Put(ctx, "chunks/restart", r, size)
	if rerr := <-restarted; rerr != nil {
		t.Fatal(rerr)
	}
	checkNoLeak(t, before)
	if err != nil {
		t.Fatalf("Put across a server restart: %v\nserver log:\n%s", err, srv.Log())
	}
	got, err := s.GetRange(ctx, "chunks/restart", 0, size)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := sha256.Sum256(got), sha256.Sum256(data); g != w {
		t.Fatalf("object after restart: SHA-256 %x, want %x", g, w)
	}
	if st, err := s.Stat(ctx, "chunks/restart"); err != nil || st.CRC32C != put.CRC32C {
		t.Errorf("Stat: %+v %v, want CRC-32C %s", st, err, put.CRC32C)
	}
	if n, err := s.AbortIncomplete(ctx, "", 0); err != nil || n != 0 {
		t.Errorf("uploads left behind: %d (%v), want 0", n, err)
	}
}

// A short outage with no retry budget fails the Put, and the upload it
// began is aborted once the server is back, so nothing half-uploaded
// remains.
func TestPutFailsCleanly(t *testing.T) {
	srv, s := setup(t, func(c *Config) { c.RetryFor = time.Millisecond })
	ctx := context.Background()
	data := randomBytes(5, 20<<20)
	r := &hookReader{r: bytes.NewReader(data), at: minPartSize, hook: srv.Kill}
	before := ownGoroutines()
	if _, err := s.Put(ctx, "chunks/broken", r, int64(len(data))); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Put with the server gone: got %v, want ErrUnreachable", err)
	}
	checkNoLeak(t, before)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx, "")
	if err != nil || len(infos) != 0 {
		t.Errorf("List after a failed Put: %v %v, want nothing", infos, err)
	}
	// The abort could not reach the server: the upload is left to
	// AbortIncomplete, and still not listed.
	if _, err := s.AbortIncomplete(ctx, "", 0); err != nil {
		t.Errorf("AbortIncomplete: %v", err)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	isolate(t)
	srv := s3test.Start(t)
	ctx := context.Background()
	const wrongSecret = "WRONGsecret/do-not-print-me+42"
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))

	check := func(t *testing.T, cfg Config, want error, says ...string) {
		t.Helper()
		s, err := New(ctx, cfg, log)
		if err == nil {
			err = s.Check(ctx)
		}
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		t.Logf("says: %v", err)
		for _, w := range says {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		for _, secret := range []string{wrongSecret, srv.SecretKey} {
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
				t.Errorf("error prints the secret key: %v", err)
			}
		}
		if s != nil { // the Put path too
			_, err := s.Put(ctx, "x", bytes.NewReader([]byte("x")), 1)
			if !errors.Is(err, want) || strings.Contains(err.Error(), wrongSecret) {
				t.Errorf("Put: got %v, want %v without the secret", err, want)
			}
		}
	}

	t.Run("wrong secret in config", func(t *testing.T) {
		cfg := testConfig(srv)
		cfg.SecretAccessKey = wrongSecret
		check(t, cfg, ErrCredentials, "SignatureDoesNotMatch", "secret_access_key in test.yaml", "FMCA****")
	})
	t.Run("unknown key in the environment", func(t *testing.T) {
		cfg := testConfig(srv)
		cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
		cfg.Endpoint = ""
		t.Setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY0000000")
		t.Setenv("AWS_SECRET_ACCESS_KEY", wrongSecret)
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
		check(t, cfg, ErrCredentials, "AWS_ACCESS_KEY_ID", "the environment", "NOSU****")
	})
	t.Run("no credentials", func(t *testing.T) {
		cfg := testConfig(srv)
		cfg.AccessKeyID, cfg.SecretAccessKey = "", ""
		check(t, cfg, ErrCredentials, "AWS_ACCESS_KEY_ID", "access_key_id")
	})
	t.Run("missing bucket", func(t *testing.T) {
		cfg := testConfig(srv)
		cfg.Bucket = "no-such-bucket-here"
		check(t, cfg, ErrNoBucket, `bucket "no-such-bucket-here"`, "bucket in test.yaml")
	})
	t.Run("unreachable endpoint in config", func(t *testing.T) {
		cfg := testConfig(srv)
		cfg.Endpoint = "http://127.0.0.1:1"
		check(t, cfg, ErrUnreachable, "http://127.0.0.1:1", "endpoint in test.yaml")
	})
	t.Run("unreachable endpoint in environment", func(t *testing.T) {
		cfg := testConfig(srv)
		cfg.Endpoint = ""
		t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
		check(t, cfg, ErrUnreachable, "http://127.0.0.1:1", "(AWS_ENDPOINT_URL)")
	})
	t.Run("clock skew", func(t *testing.T) {
		// The server compares the request's signed time with its clock
		// before the signature, so a request stamped an hour early gets
		// RequestTimeTooSkewed from the real server.
		s, err := newStore(ctx, testConfig(srv), log, skewedClient{-time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Check(ctx)
		if !errors.Is(err, ErrClockSkew) || !strings.Contains(err.Error(), "fix the clock") {
			t.Errorf("got %v, want ErrClockSkew saying to fix the clock", err)
		}
		if _, err := s.GetRange(ctx, "k", 0, 1); !errors.Is(err, ErrClockSkew) {
			t.Errorf("GetRange: got %v, want ErrClockSkew", err)
		}
	})

	cfg := testConfig(srv)
	cfg.SecretAccessKey = wrongSecret
	cfg.SessionToken = "tok-" + wrongSecret
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if p := fmt.Sprintf(f, cfg); strings.Contains(p, wrongSecret) || strings.Contains(p, srv.AccessKey) {
			t.Errorf("fmt %s of a Config prints a secret or the whole key: %s", f, p)
		}
	}
	log.Info("config", "cfg", cfg)
	if strings.Contains(logged.String(), wrongSecret) || strings.Contains(logged.String(), srv.SecretKey) ||
		strings.Contains(logged.String(), srv.AccessKey) {
		t.Errorf("the log holds a secret:\n%s", logged.String())
	}
	if !strings.Contains(logged.String(), "FMCA****") {
		t.Errorf("the log does not say which key was used:\n%s", logged.String())
	}
}

// skewedClient sends each request as if this machine's clock were off by
// skew: it moves X-Amz-Date (the server checks the time before the
// signature).
type skewedClient struct{ skew time.Duration }

func (c skewedClient) Do(req *http.Request) (*http.Response, error) {
	if d := req.Header.Get("X-Amz-Date"); d != "" {
		if tm, err := time.Parse("20060102T150405Z", d); err == nil {
			req.Header.Set("X-Amz-Date", tm.Add(c.skew).Format("20060102T150405Z"))
		}
	}
	return http.DefaultClient.Do(req)
}

func TestConfigChecks(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		says string
	}{
		{Config{}, "set bucket in the config file"},
		{Config{Bucket: "b", PartSize: 1 << 20}, "part_size"},
		{Config{Bucket: "b", AccessKeyID: "AKIA"}, "access_key_id and secret_access_key"},
	} {
		_, err := tc.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: got %v, want an error saying %q", tc.cfg, err, tc.says)
		}
	}
	c, err := Config{Bucket: "b", Prefix: "/p/n"}.withDefaults()
	if err != nil || c.Prefix != "p/n/" {
		t.Errorf("prefix: got %q %v, want p/n/", c.Prefix, err)
	}
}

// countingClient counts the GETs that reach the server.
type countingClient struct {
	mu   sync.Mutex
	gets int
}

func (c *countingClient) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && req.Header.Get("Range") != "" {
		c.mu.Lock()
		c.gets++
		c.mu.Unlock()
	}
	return http.DefaultClient.Do(req)
}

func TestReadRanges(t *testing.T) {
	isolate(t)
	srv := s3test.Start(t)
	cc := &countingClient{}
	s, err := newStore(context.Background(), testConfig(srv), nil, cc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const size = 4 << 20
	data := randomBytes(11, size)
	if _, err := s.Put(ctx, "chunk", bytes.NewReader(data), size); err != nil {
		t.Fatal(err)
	}
	const gap = 64 << 10
	for _, tc := range []struct {
		name   string
		ranges []Range
		gets   int
	}{
		{"none", nil, 0},
		{"empty range", []Range{{100, 0}}, 0},
		{"one", []Range{{1000, 32 << 10}}, 1},
		{"adjacent", []Range{{0, 100}, {100, 100}, {200, 50}}, 1},
		{"overlapping, unsorted", []Range{{5000, 3000}, {1000, 5000}, {4000, 10}}, 1},
		{"within the gap", []Range{{0, 32 << 10}, {32<<10 + gap - 1, 10}}, 1},
		{"past the gap", []Range{{0, 32 << 10}, {32<<10 + gap + 1, 10}}, 2},
		{"far apart, out of order", []Range{{3 << 20, 32 << 10}, {0, 32 << 10}, {1 << 20, 32 << 10}, {2 << 20, 32 << 10}, {size - 1, 1}}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc.mu.Lock()
			cc.gets = 0
			cc.mu.Unlock()
			got, err := s.ReadRanges(ctx, "chunk", tc.ranges, gap)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range tc.ranges {
				if !bytes.Equal(got[i], data[r.Off:r.Off+r.N]) {
					t.Errorf("range %d (%d+%d): wrong bytes", i, r.Off, r.N)
				}
			}
			if cc.gets != tc.gets {
				t.Errorf("GETs: got %d, want %d", cc.gets, tc.gets)
			}
		})
	}
	before := ownGoroutines()
	if _, err := s.ReadRanges(ctx, "chunk", []Range{{0, 10}, {size - 5, 10}, {1 << 20, 10}, {2 << 20, 10}, {3 << 20, 10}, {3<<20 + 100, 10}}, 0); !errors.Is(err, ErrShort) {
		t.Errorf("a range past the end: got %v, want ErrShort", err)
	}
	checkNoLeak(t, before)
}

// ownGoroutines counts the goroutines that are not idle HTTP connections
// (the SDK's transport keeps those for reuse, as it should).
func ownGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "net/http.(*persistConn)") && !strings.Contains(g, "net/http.(*Transport).dialConnFor") {
			n++
		}
	}
	return n
}

// checkNoLeak fails the test if goroutines the package started outlive
// the calls that started them.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ownGoroutines() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutines: %d after, %d before:\n%s", ownGoroutines(), before, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The standard chain's shared files: a profile gives the region, the
// endpoint (endpoint_url, S3-specific in a services section) and the keys;
// the Config names only the bucket and the profile.
func TestSharedConfigProfile(t *testing.T) {
	isolate(t)
	srv := s3test.Start(t)
	writeFile := func(env, text string) {
		t.Helper()
		if err := os.WriteFile(os.Getenv(env), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile("AWS_CONFIG_FILE", fmt.Sprintf(`[profile fleet]
region = %s
services = fleet-s3

[services fleet-s3]
s3 =
  endpoint_url = %s
`, srv.Region, srv.Endpoint))
	writeFile("AWS_SHARED_CREDENTIALS_FILE", fmt.Sprintf("[fleet]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		srv.AccessKey, srv.SecretKey))
	ctx := context.Background()
	s, err := New(ctx, Config{Bucket: srv.Bucket, Profile: "fleet"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("via the profile"), 15); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := s.GetRange(ctx, "k", 4, 3); err != nil || string(got) != "the" {
		t.Errorf("GetRange: %q %v, want \"the\"", got, err)
	}

	srv.Stop()
	err = s.Check(ctx)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), srv.Endpoint+" (endpoint_url in the shared AWS config)") {
		t.Errorf("with the server stopped: got %v, want ErrUnreachable naming endpoint_url", err)
	}
	t.Logf("says: %v", err)
}

// A single PUT cut off mid-body (the server dies while receiving it) leaves
// no object behind: after a restart nothing is listed.
func TestInterruptedPutNotListed(t *testing.T) {
	srv, s := setup(t, nil)
	ctx := context.Background()
	body := randomBytes(8, 4<<20)
	req, err := http.NewRequest(http.MethodPut, srv.Endpoint+"/"+srv.Bucket+"/"+s.full("chunks/cut"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s3test.SignV4(req, body, srv.AccessKey, srv.SecretKey, srv.Region, time.Now())
	pr, pw := io.Pipe()
	req.Body = pr // the signed length and hash are the whole body's
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server take in the first half
	srv.Kill()
	pw.CloseWithError(errors.New("cut"))
	<-done
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(ctx, "")
	if err != nil || len(infos) != 0 {
		t.Errorf("List after a PUT cut off mid-body: %+v %v, want nothing", infos, err)
	}
	if _, err := s.Stat(ctx, "chunks/cut"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat: got %v, want ErrNotFound", err)
	}
}

// corrupter is a transport that flips one byte of the body of the PUTs
// whose URL contains match (a part: "partNumber=2"), after the client
// signed and checksummed it, as a bad NIC or proxy would; it records the
// object PUTs' payload hash and signed headers.
type corrupter struct {
	match string
	mu    sync.Mutex
	seen  []string // "x-amz-content-sha256 | SignedHeaders=..."
}

func (c *corrupter) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.Body != nil && req.ContentLength > 0 {
		auth := req.Header.Get("Authorization")
		c.mu.Lock()
		c.seen = append(c.seen, req.Header.Get("X-Amz-Content-Sha256")+" | "+auth[strings.Index(auth, "SignedHeaders="):])
		c.mu.Unlock()
		if c.match != "" && strings.Contains(req.URL.String(), c.match) {
			req.Body = &flipReader{r: req.Body, at: req.ContentLength / 2}
		}
	}
	return http.DefaultClient.Do(req)
}

type flipReader struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0x40
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// Uploads that go unsigned (UNSIGNED-PAYLOAD: over HTTPS, or with
// sign_payload false) have the CRC-32C alone guard the bytes: it must be
// in the signed headers, and the server must refuse a body that does not
// match it, for a single PUT and for a part. Over plain HTTP, by default,
// the bytes are signed.
func TestUnsignedPayloadChecked(t *testing.T) {
	isolate(t)
	srv := s3test.Start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, match string
		size        int
		sign        bool
		unset       bool // SignPayload left to its default: signed over plain HTTP
	}{
		{"single PUT", "chunks/single", 1 << 20, false, false},
		{"part 2 of 2", "partNumber=2", minPartSize + 1<<20, false, false},
		{"single PUT, signed payload", "chunks/single", 1 << 20, true, false},
		{"single PUT, default over plain HTTP", "chunks/single", 1 << 20, true, true},
		{"part 2 of 2, signed payload", "partNumber=2", minPartSize + 1<<20, true, false},
		{"single PUT, default, endpoint from the profile", "chunks/single", 1 << 20, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(srv)
			if !tc.unset {
				cfg.SignPayload = &tc.sign
			}
			if strings.HasSuffix(tc.name, "from the profile") {
				// The endpoint only in the shared AWS config, as the SDK
				// reads it: plain HTTP there too must sign.
				conf := filepath.Join(t.TempDir(), "config")
				if err := os.WriteFile(conf, []byte("[profile fm]\nendpoint_url = "+cfg.Endpoint+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Setenv("AWS_CONFIG_FILE", conf)
				cfg.Endpoint, cfg.Profile = "", "fm"
			}
			cfg.Prefix = strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			hc := &corrupter{}
			s, err := newStore(ctx, cfg, nil, hc)
			if err != nil {
				t.Fatal(err)
			}
			data := randomBytes(3, tc.size)
			key := "chunks/" + strings.Fields(tc.name)[0]
			if _, err := s.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("Put, body intact: %v", err)
			}
			if len(hc.seen) == 0 {
				t.Fatal("no PUT went through the test's transport: nothing checked")
			}
			for _, h := range hc.seen {
				unsigned := strings.HasPrefix(h, "UNSIGNED-PAYLOAD |")
				if unsigned == tc.sign || !strings.Contains(h, "x-amz-checksum-crc32c") {
					t.Errorf("a PUT's payload hash | signed headers: got %q, want %s and x-amz-checksum-crc32c signed",
						h, map[bool]string{false: "UNSIGNED-PAYLOAD", true: "the body's SHA-256"}[tc.sign])
				}
			}
			hc.match = tc.match
			_, err = s.Put(ctx, key+"-bad", bytes.NewReader(data), int64(len(data)))
			if err == nil {
				t.Fatalf("Put of a body corrupted after its CRC-32C was computed: accepted, want refused")
			}
			t.Logf("refused: %v", err)
			if _, err := s.Stat(ctx, key+"-bad"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat of the refused object: got %v, want ErrNotFound", err)
			}
		})
	}
}

// BenchmarkPut uploads objects of 4 MiB (one PUT: a 32 MiB chunk of text
// traffic compressed) and 32 MiB (2 parts of 16 MiB) to versitygw on
// loopback and reports the client's CPU per GB (user + system, this
// process), the figure fmupload's CPU per byte comes from.
//
//	go test -run '^$' -bench Put -benchtime 20x ./store/objstore/
func BenchmarkPut(b *testing.B) {
	for _, tc := range []struct {
		size int
		sign bool
	}{{4 << 20, false}, {32 << 20, false}, {32 << 20, true}} {
		size, sign := tc.size, tc.sign
		b.Run(fmt.Sprintf("%dMiB/sign=%v", size>>20, sign), func(b *testing.B) {
			isolate(b)
			srv := s3test.Start(b)
			cfg := testConfig(srv)
			cfg.PartSize = defaultPartSize
			cfg.SignPayload = &sign
			s, err := New(context.Background(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			data := randomBytes(1, size)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Put(context.Background(), fmt.Sprintf("chunks/%d", i), bytes.NewReader(data), int64(len(data))); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*float64(len(data))/1e9), "cpu-s/GB")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCRCCombine(t *testing.T) {
	data := randomBytes(11, 3<<20+17)
	for _, cut := range []int{0, 1, 7, 4096, 1 << 20, len(data) - 1, len(data)} {
		a, b := data[:cut], data[cut:]
		got := crcCombine(crc32.Checksum(a, crcTable), crc32.Checksum(b, crcTable), int64(len(b)))
		if want := crc32.Checksum(data, crcTable); got != want {
			t.Errorf("cut at %d: got %08x want %08x", cut, got, want)
		}
	}
}
