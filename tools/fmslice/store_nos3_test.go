package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNoS3BuildRunsFmsliceS3: make build's fmslice (-tags fmslice_nos3)
// hands a command naming an s3:// store, on the command line or in the
// store variable, to fmslice-s3 beside it, unchanged (arguments, exit
// status), and reads a local store itself.
func TestNoS3BuildRunsFmsliceS3(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fmslice")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fmslice")
	if out, err := exec.Command("go", "build", "-tags", "fmslice_nos3", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags fmslice_nos3: %v\n%s", err, out)
	}
	run := func(env []string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		// PATH holds no fmslice-s3 (one installed on this machine would
		// be found there when none is beside the binary).
		cmd.Env = append(append(os.Environ(), "PATH="+t.TempDir()), env...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}
	args := []string{"--store", "s3://bucket/prefix/node", "--from", "0", "--to", "now", "-w", "-", "tcp port 80"}
	if _, stderr, code := run(nil, args...); code != 1 || !strings.Contains(stderr, "fmslice-s3") {
		t.Errorf("without fmslice-s3: exit %d, stderr %q; want 1 and a message naming fmslice-s3", code, stderr)
	}
	fake := "#!/bin/sh\nprintf '%s|' \"$@\"\nexit 7\n"
	if err := os.WriteFile(filepath.Join(dir, "fmslice-s3"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, _, code := run(nil, args...); code != 7 || out != strings.Join(args, "|")+"|" {
		t.Errorf("--store s3://: fmslice-s3 got %q, exit %d; want %q, 7", out, code, strings.Join(args, "|")+"|")
	}
	if out, _, code := run([]string{"FMCAP_SLICE_STORE=s3://bucket/prefix/node"}, "info"); code != 7 || out != "info|" {
		t.Errorf("FMCAP_SLICE_STORE=s3://: fmslice-s3 got %q, exit %d; want \"info|\", 7", out, code)
	}
	// fmslice-s3 that is itself a local-only build (a copy): an error
	// saying so, not an exec loop.
	self, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fmslice-s3"), self, 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, stderr, code := run(nil, args...); code != 1 || !strings.Contains(stderr, "build without the S3 client") {
			t.Errorf("fmslice-s3 a local-only build: exit %d, stderr %q; want 1 and a message saying so", code, stderr)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("fmslice-s3 a local-only build: still running after a minute (an exec loop)")
	}
	local := t.TempDir()
	if out, stderr, code := run(nil, "--store", local, "-w", filepath.Join(local, "x.pcap")); code != 1 || out != "" || !strings.Contains(stderr, "holds no chunks") {
		t.Errorf("local store: exit %d, stdout %q, stderr %q; want fmslice's own answer (no chunks)", code, out, stderr)
	}
}
