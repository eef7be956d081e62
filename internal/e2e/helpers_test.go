// Package e2e runs the built binaries end to end, as a person would, and
// compares what fmslice returns with what tcpdump and editcap make of the
// same input.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fmcap/fmcap/internal/testpkt"
)

var binDir string

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" { // a helper inside a namespace
		os.Exit(runRole(role, os.Args[len(os.Args)-roleArgs(role):]))
	}
	dir, err := os.MkdirTemp("", "fmcap-e2e-bin")
	if err != nil {
		panic(err)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/fmcap/fmcap/cmd/writer", "github.com/fmcap/fmcap/cmd/fwd", "github.com/fmcap/fmcap/cmd/indexer", "github.com/fmcap/fmcap/bench/gen", "github.com/fmcap/fmcap/tools/fmring", "github.com/fmcap/fmcap/tools/fminject", "github.com/fmcap/fmcap/tools/fmslice", "github.com/fmcap/fmcap/tools/fmctl", "github.com/fmcap/fmcap/cmd/fmcapd", "github.com/fmcap/fmcap/cmd/fmupload")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

func testdata(name string) string { return filepath.Join("..", "..", "testdata", name) }

// need skips the test when a reference tool is missing (make test installs them).
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make test installs it)", tool)
		}
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, stderr, code := runCode(t, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d: %s", name, strings.Join(args, " "), code, stderr)
	}
	return out
}

func runCode(t *testing.T, name string, args ...string) (stdout []byte, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v", name, err)
	}
	return o.Bytes(), e.String(), code
}

// ringPath is a fresh ring file name: on /dev/shm when there is one, as in
// production, else in the test's temp dir.
func ringPath(t *testing.T) string {
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		f, err := os.CreateTemp("/dev/shm", "fmcap-test-ring-")
		if err == nil {
			name := f.Name()
			f.Close()
			os.Remove(name)
			t.Cleanup(func() { os.Remove(name) })
			return name
		}
	}
	return filepath.Join(dir, "ring")
}

func makeRing(t *testing.T, size string) string {
	r := ringPath(t)
	run(t, bin("fmring"), "create", "--ring", r, "--size", size, "--consumer", "writer:lossless", "--consumer", "indexer:lossy")
	return r
}

// store runs fminject → ring → writer --exit-on-close and returns the store.
func store(t *testing.T, inputs []string, writerArgs ...string) string {
	t.Helper()
	r := makeRing(t, "256MiB")
	st := filepath.Join(t.TempDir(), "store")
	run(t, bin("fminject"), append([]string{"--ring", r, "-q"}, inputs...)...)
	run(t, bin("writer"), append([]string{"--ring", r, "--store", st, "--exit-on-close", "--log-level", "warn"}, writerArgs...)...)
	return st
}

// tcpdumpText is the reference rendering: every byte and nanosecond shows.
func tcpdumpText(t *testing.T, file string, filter ...string) string {
	t.Helper()
	args := append([]string{"--time-stamp-precision=nano", "-nn", "-tt", "-e", "-x", "-r", file}, filter...)
	return string(run(t, "tcpdump", args...))
}

func writeFile(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "f.pcap")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// packetTimes returns each packet's capture time (ns) as tcpdump reads them.
func packetTimes(t *testing.T, file string) []int64 {
	out := run(t, "tcpdump", "--time-stamp-precision=nano", "-tt", "-nn", "-q", "-r", file)
	var ts []int64
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f, _, _ := strings.Cut(line, " ")
		sec, frac, _ := strings.Cut(f, ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		n, _ := strconv.ParseInt(frac, 10, 64)
		ts = append(ts, s*1e9+n)
	}
	return ts
}

func unixArg(ns int64) string { return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9) }

// genCapture writes testpkt.Capture(n) to a file.
func genCapture(t *testing.T, n int) string { return writeFile(t, testpkt.Capture(n)) }

// checkStore fails the test unless the store holds seqs 1..n exactly once.
func checkStore(t *testing.T, dir string, n int) {
	t.Helper()
	if err := testpkt.CheckStore(dir, n); err != nil {
		t.Fatal(err)
	}
}

// TestGoInstall runs the README's install line (into a temporary GOBIN):
// the module path is one go install takes, and every command builds.
func TestGoInstall(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const line = "GOBIN=/usr/local/bin go install ./cmd/fwd ./cmd/writer ./cmd/indexer ./tools/..."
	if !strings.Contains(string(readme), line) {
		t.Fatalf("README.md no longer shows %q: update this test with it", line)
	}
	gobin := t.TempDir()
	cmd := exec.Command("go", strings.Fields(line)[2:]...) // after "GOBIN=… go"
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	for _, name := range []string{"fwd", "writer", "indexer", "fmring", "fminject", "fmslice", "fmctl"} {
		out, _, code := runCode(t, filepath.Join(gobin, name), "--version")
		if code != 0 || !strings.Contains(string(out), name) {
			t.Errorf("%s --version: exit %d: %s", name, code, out)
		}
	}
}
