// Package s3test runs a real S3 server for tests: versitygw
// (github.com/versity/versitygw, Apache-2.0) with its posix backend on a
// temporary directory, listening on 127.0.0.1 only, with fixed test
// credentials and one bucket. Requests to it are really signed (SigV4) and
// multipart uploads are really assembled, which a mock would not check.
//
// The server is built from the Go module proxy at a pinned version
// (Version) with `go install module/cmd/versitygw@Version`, into a cache
// directory under os.UserCacheDir(), once per machine. It is deliberately
// not a dependency in fmcap's go.mod: versitygw requires about 90 modules
// (Azure, Kafka, NATS, RabbitMQ, LDAP, Vault, fiber, fasthttp, ...) that
// the product must not carry, and `go install pkg@version` builds it as its
// own main module, with its own go.mod and the checksum database, so its
// versions never enter fmcap's module graph. FMCAP_VERSITYGW names a
// prebuilt binary instead.
//
// Where the build cannot be done (no module proxy), tests skip with the
// reason; with CI set in the environment they fail instead, because CI must
// run them.
//
// The first build costs about 4 minutes of CPU (17 minutes of wall clock on
// a loaded 2-core machine); later runs take the binary from the cache. A
// test binary stopped meanwhile by go test's default 10-minute -timeout
// does not stop the build (it runs in its own process group and installs
// the binary itself), but CI should build it first, with a longer timeout:
//
//	go test -timeout 30m -run TestServer ./internal/s3test
package s3test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the pinned versitygw release: the newest the module proxy
// served on 2026-11-30, and it builds with Go 1.26.
const Version = "v1.8.0"

// Module is versitygw's module path; its command is Module+"/cmd/versitygw".
const Module = "github.com/versity/versitygw"

// Fixed test credentials and region. They protect nothing: the server
// listens on 127.0.0.1 only and lives as long as one test.
const (
	AccessKey = "FMCAPTESTACCESSKEY01"
	SecretKey = "fmcapTestSecretKey/doNotUse+0123456789abc"
	Region    = "us-east-1"
	Bucket    = "fmcap-test"
)

// Server is one running versitygw. Endpoint, Dir and the port stay the same
// across Stop and Start, so a restarted server serves the same objects at
// the same address.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Addr      string // 127.0.0.1:PORT
	Dir       string // the posix backend's root; each bucket is a directory in it
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string

	t       testing.TB
	bin     string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start builds (or finds) versitygw, starts it on a free loopback port with
// its posix backend on a fresh t.TempDir(), creates Bucket, and stops the
// server by its PID when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{
		Dir:       filepath.Join(t.TempDir(), "s3"),
		Bucket:    Bucket,
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		Region:    Region,
		t:         t,
		bin:       bin,
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s.logPath = filepath.Join(filepath.Dir(s.Dir), "versitygw.log")
	t.Cleanup(s.Stop)
	// A free port is found by binding :0 and closing it, so another process
	// may take it before versitygw binds it: try a few ports.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			t.Fatalf("s3test: %v", err)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		s.Endpoint = "http://" + s.Addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("s3test: start versitygw: %v", err)
	}
	if err := s.CreateBucket(context.Background(), s.Bucket); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return s
}

// Start starts the server again after Stop or Kill, on the same directory
// and port. It returns an error rather than failing the test so that a
// fault test may call it from another goroutine.
func (s *Server) Start() error {
	if err := s.start(); err != nil {
		return fmt.Errorf("s3test: restart versitygw on %s: %w", s.Addr, err)
	}
	return nil
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(s.bin,
		"--port", s.Addr,
		"--region", s.Region,
		"--quiet",
		"posix", s.Dir)
	// Credentials go through the environment, not argv, so that they are
	// not visible in ps output of a shared machine (they are test keys, but
	// the habit is the point).
	cmd.Env = append(os.Environ(),
		"ROOT_ACCESS_KEY_ID="+s.AccessKey,
		"ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a test's ^C does not reach it before
	// Cleanup stops it, and it never outlives the test by signal races.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// Ready when it accepts a connection; gone if it exits first (port
	// taken, bad flags): then its log says why.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited at start (%v); log %s:\n%s", cmd.ProcessState, s.logPath, tail(s.logPath))
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("versitygw not listening on %s after 30 s; log %s:\n%s", s.Addr, s.logPath, tail(s.logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd, s.done = cmd, done
	return nil
}

// Stop stops the server by its PID (SIGTERM, then SIGKILL after 10 s) and
// waits for it. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// PID is the running server's process id, 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns what the server has printed so far, for failure messages.
func (s *Server) Log() string { return tail(s.logPath) }

// CreateBucket creates a bucket with a signed PUT. It is done here with a
// few lines of SigV4 rather than with an S3 client so that the harness does
// not depend on the client under test.
func (s *Server) CreateBucket(ctx context.Context, bucket string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.Endpoint+"/"+bucket, nil)
	if err != nil {
		return err
	}
	SignV4(req, nil, s.AccessKey, s.SecretKey, s.Region, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("create bucket %q: %w", bucket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("create bucket %q: %s: %s", bucket, resp.Status, body)
	}
	return nil
}

// SignV4 signs req for the "s3" service with AWS Signature Version 4 at
// time now (a test may pass a skewed clock), headers only, path-style.
func SignV4(req *http.Request, body []byte, access, secret, region string, now time.Time) {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	day := now.Format("20060102")
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	signed := "host;x-amz-content-sha256;x-amz-date"
	canon := strings.Join([]string{
		req.Method,
		req.URL.EscapedPath(),
		req.URL.RawQuery, // callers pass queries already in canonical order
		"host:" + req.URL.Host + "\n" +
			"x-amz-content-sha256:" + payload + "\n" +
			"x-amz-date:" + amzDate + "\n",
		signed,
		payload,
	}, "\n")
	scope := day + "/" + region + "/s3/aws4_request"
	ch := sha256.Sum256([]byte(canon))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(ch[:])
	k := hmacSHA256([]byte("AWS4"+secret), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	k = hmacSHA256(k, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(k, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+access+"/"+scope+
		", SignedHeaders="+signed+", Signature="+sig)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error // a reason to skip (no proxy) or, in CI, to fail
)

// Binary returns the path of the versitygw binary, building it on first
// use. It skips the test when the build cannot be done, or fails it when CI
// is set in the environment.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildBin, buildErr = build() })
	if buildErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("s3test: CI must run the S3 tests: %v", buildErr)
		}
		t.Skipf("s3test: no S3 server for this test: %v", buildErr)
	}
	return buildBin
}

func build() (string, error) {
	if p := os.Getenv("FMCAP_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("FMCAP_VERSITYGW: %w", err)
		}
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	// The Go version is in the directory name: a toolchain upgrade builds
	// afresh instead of running a binary built by another.
	dir := filepath.Join(cache, "fmcap", "s3test", "versitygw-"+Version+"-"+runtime.Version())
	bin := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	// Test binaries of several packages run at once: one builds, the others
	// wait on the lock and then find the binary.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("build lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("build lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			return "", fmt.Errorf("no go command to build versitygw: %w", err)
		}
	}
	tmpBin, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	// go install pkg@version builds versitygw as its own main module (its
	// go.mod, its go.sum checked against the checksum database), outside
	// any work tree: fmcap's go.mod is neither read nor changed. The build
	// takes minutes on a loaded 2-core machine; it runs in its own process
	// group and moves the binary into place itself, so that a test binary
	// stopped by its -timeout meanwhile does not waste it: the next run
	// finds the binary (or the build cache) ready.
	cmd := exec.Command("/bin/sh", "-c", `"$S3TEST_GO" install -trimpath "$S3TEST_PKG" && mv -f "$GOBIN/versitygw" "$S3TEST_DEST" && rm -rf "$GOBIN"`)
	cmd.Dir = tmpBin
	cmd.Env = append(os.Environ(), "GOBIN="+tmpBin, "GOWORK=off", "GOFLAGS=-buildvcs=false",
		"S3TEST_GO="+goTool, "S3TEST_PKG="+Module+"/cmd/versitygw@"+Version, "S3TEST_DEST="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("build versitygw: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
		err = fmt.Errorf("not done after 30 minutes (%v)", err)
	}
	if err != nil {
		os.RemoveAll(tmpBin)
		return "", fmt.Errorf("build versitygw %s from the module proxy (go install %s/cmd/versitygw@%s): %v\n%s",
			Version, Module, Version, err, out.String())
	}
	return bin, nil
}
