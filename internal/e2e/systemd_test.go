package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped units verify with systemd-analyze (with ExecStart pointing at
// the binaries this test built, since verify checks they exist), with no
// warning either.
func TestSystemdUnitsVerify(t *testing.T) {
	need(t, "systemd-analyze")
	units, _ := filepath.Glob("../../systemd/fmcap*.service")
	target, _ := filepath.Glob("../../systemd/*.target")
	units = append(units, target...)
	if len(units) < 5 {
		t.Fatalf("units: %v", units)
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(u))
		os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/", binDir+"/")), 0o644)
		paths = append(paths, p)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, paths...)...).CombinedOutput()
	// Messages about the host's own units (this machine may not be booted
	// with systemd) are not ours; any line naming an fmcap unit is.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "fmcap") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(ours, "\n"))
	}
}

// The shipped configuration is accepted by every process that reads it.
func TestShippedConfiguration(t *testing.T) {
	src, err := os.ReadFile("../../systemd/fmcap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ring := ringPath(t)
	cfg := filepath.Join(t.TempDir(), "fmcap.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(string(src), "/dev/hugepages/fmcap/ring", ring, 1)), 0o600)
	run(t, bin("fwd"), "--check-config", cfg)
	run(t, bin("fmring"), "create", "--config", cfg, "--size", "64MiB") // the flag wins over the file's 1GiB
	info := string(run(t, bin("fmring"), "info", "--config", cfg))
	if !strings.Contains(info, "data 67108864 bytes") || !strings.Contains(info, "writer    lossless") || !strings.Contains(info, "indexer   lossy") {
		t.Fatalf("fmring info:\n%s", info)
	}
	// --exist-ok accepts the same ring and refuses another geometry.
	run(t, bin("fmring"), "create", "--config", cfg, "--size", "64MiB", "--exist-ok")
	if _, stderr, code := runCode(t, bin("fmring"), "create", "--config", cfg, "--exist-ok"); code == 0 || !strings.Contains(stderr, "another geometry") {
		t.Fatalf("exist-ok with another size: exit %d: %s", code, stderr)
	}
	// The writer takes its store from the file, or from the environment,
	// which wins over the file.
	store := filepath.Join(t.TempDir(), "store")
	w := exec.Command(bin("writer"), "--config", cfg, "--exit-on-close", "--log-level", "warn")
	w.Env = append(os.Environ(), "FMCAP_WRITER_STORE="+store)
	run(t, bin("fminject"), "--ring", ring, "-q", testdata("ns-http.pcap"))
	if out, err := w.CombinedOutput(); err != nil {
		t.Fatalf("writer --config: %v: %s", err, out)
	}
	if got := run(t, bin("fmslice"), "--store", store, "-q"); len(got) < 1000 {
		t.Fatalf("store from FMCAP_WRITER_STORE holds %d bytes", len(got))
	}
	// Every command takes its settings from the same file: fmslice the
	// writer's store, fminject the ring.
	cfg2 := filepath.Join(t.TempDir(), "fmcap2.yaml")
	os.WriteFile(cfg2, []byte("ring:\n  path: "+ring+"\nwriter:\n  store: "+store+"\n"), 0o600)
	if a, b := run(t, bin("fmslice"), "--config", cfg2, "-q"), run(t, bin("fmslice"), "--store", store, "-q"); !bytes.Equal(a, b) || len(a) < 1000 {
		t.Fatalf("fmslice --config: %d bytes, --store: %d", len(a), len(b))
	}
	if _, stderr, code := runCode(t, bin("fminject"), "--config", cfg2, "-q", testdata("ns-http.pcap")); code != 0 {
		t.Fatalf("fminject --config: %s", stderr)
	}
	// An unknown key in the writer's section is named with its line.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("ring:\n  path: "+ring+"\nwriter:\n  store: /tmp/x\n  frame_sise: 1MiB\n"), 0o600)
	if _, stderr, code := runCode(t, bin("writer"), "--config", bad); code == 0 || !strings.Contains(stderr, "bad.yaml:5: unknown key writer.frame_sise") {
		t.Fatalf("writer with a misspelt key: exit %d: %s", code, stderr)
	}
}

// TestServiceUnderSystemd boots systemd in a container (systemd-nspawn
// over a debootstrap tree), with fmcap installed by make install and
// fmcap.target enabled: the ring, writer, indexer and fwd units come up as
// the fmcap user, fwd answers fmctl, and stopping the target stops fwd
// before the writer. scripts/nspawn-check.sh does the work.
func TestServiceUnderSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to boot a container")
	}
	need(t, "systemd-nspawn", "debootstrap")
	if testing.Short() {
		t.Skip("boots a container (-short)")
	}
	out, err := exec.Command("../../scripts/nspawn-check.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/nspawn-check.sh: %v; the end of what it printed:\n%s", err, lastLines(string(out), 30))
	}
	s := string(out)
	fwdStop, writerStop := strings.Index(s, "msg=stopped"), strings.Index(s, "writer stopped")
	if fwdStop < 0 || writerStop < 0 || fwdStop > writerStop {
		t.Fatalf("stopping the target did not stop fwd before the writer:\n%s", s)
	}
	t.Logf("\n%s", s)
}

// lastLines keeps a failure message short: the last n lines of out.
func lastLines(out string, n int) string {
	l := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(l) > n {
		l = append([]string{fmt.Sprintf("[%d lines before these]", len(l)-n)}, l[len(l)-n:]...)
	}
	return strings.Join(l, "\n")
}
