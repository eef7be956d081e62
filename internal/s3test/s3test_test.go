package s3test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func do(t *testing.T, s *Server, method, path string, body []byte, now time.Time) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.Endpoint+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	SignV4(req, body, s.AccessKey, s.SecretKey, s.Region, now)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The server checks signatures, keeps objects on its directory across a
// restart on the same port, and is gone once stopped.
func TestServer(t *testing.T) {
	s := Start(t)
	if code, body := do(t, s, http.MethodPut, "/"+s.Bucket+"/k", []byte("hello"), time.Now()); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, s.Bucket, "k")); err != nil {
		t.Errorf("object not on the posix backend's directory: %v", err)
	}
	// A wrong secret is refused: the signatures are really checked.
	bad := &Server{Endpoint: s.Endpoint, AccessKey: s.AccessKey, SecretKey: "not-the-secret", Region: s.Region}
	if code, body := do(t, bad, http.MethodGet, "/"+s.Bucket+"/k", nil, time.Now()); code != http.StatusForbidden ||
		!strings.Contains(body, "SignatureDoesNotMatch") {
		t.Errorf("GET with a wrong secret: got %d %s, want 403 SignatureDoesNotMatch", code, body)
	}
	// A clock 20 minutes off is refused before the signature is checked.
	if code, body := do(t, s, http.MethodGet, "/"+s.Bucket+"/k", nil, time.Now().Add(-20*time.Minute)); code != http.StatusForbidden ||
		!strings.Contains(body, "RequestTimeTooSkewed") {
		t.Errorf("GET with a skewed clock: got %d %s, want 403 RequestTimeTooSkewed", code, body)
	}

	pid, addr := s.PID(), s.Addr
	s.Stop()
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("after Stop, PID %d: kill 0 says %v, want ESRCH", pid, err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr || s.PID() == pid {
		t.Errorf("restart: address %s pid %d, want %s and a new pid", s.Addr, s.PID(), addr)
	}
	if code, body := do(t, s, http.MethodGet, "/"+s.Bucket+"/k", nil, time.Now()); code != http.StatusOK || body != "hello" {
		t.Errorf("GET after restart: %d %q, want 200 hello", code, body)
	}
	s.Kill()
	if err := s.CreateBucket(context.Background(), "other"); err == nil {
		t.Errorf("CreateBucket with the server killed: no error")
	}
}

func TestPrebuiltBinaryMissing(t *testing.T) {
	t.Setenv("FMCAP_VERSITYGW", filepath.Join(t.TempDir(), "nothing-here"))
	if _, err := build(); err == nil || !strings.Contains(err.Error(), "FMCAP_VERSITYGW") {
		t.Errorf("got %v, want an error naming FMCAP_VERSITYGW", err)
	}
}
