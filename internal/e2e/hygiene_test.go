package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var commands = []string{"fwd", "writer", "indexer", "fmring", "fminject", "fmslice", "fmctl"}

// README.md's "Using it by hand", run as written from an empty state, in
// namespaces of its own (scripts/readme-by-hand.sh).
func TestReadmeByHand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the namespaces the README's commands run in")
	}
	need(t, "unshare", "ip", "tcpdump", "make", "sysctl")
	if testing.Short() {
		t.Skip("builds the tree and runs the pipeline (-short)")
	}
	out, err := exec.Command("../../scripts/readme-by-hand.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/readme-by-hand.sh: %v:\n%s", err, lastLines(string(out), 70))
	}
	t.Log(strings.TrimSpace(string(out)))
}

// Every binary answers --version with one line: its name, the module
// version, the commit when the build knew it, and the Go version.
func TestVersion(t *testing.T) {
	re := regexp.MustCompile(`^(\S+) (\(devel\)|v\S+|\(unknown\))( \(commit [0-9a-f]+(, \S+)?(, modified)?\))? go\d\S*\n$`)
	for _, c := range commands {
		out := string(run(t, bin(c), "--version"))
		m := re.FindStringSubmatch(out)
		if m == nil || m[1] != c {
			t.Errorf("%s --version: got %q, want %q", c, out, c+" VERSION [(commit …)] goX.Y")
		}
	}
}

// Each command's help lists the variables of the one scheme, and the
// commands read them.
func TestEnvironment(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"writer", "--help"}, []string{"$FMCAP_WRITER_STORE", "$FMCAP_WRITER_RING, $FMCAP_RING_PATH", "$FMCAP_CONFIG", "$FMCAP_WRITER_RETAIN_BYTES"}},
		{[]string{"indexer", "--help"}, []string{"$FMCAP_INDEXER_STORE", "$FMCAP_RING_PATH", "$FMCAP_INDEXER_SEGMENT_AGE"}},
		{[]string{"fmring", "create", "--help"}, []string{"$FMCAP_RING_PATH", "$FMCAP_RING_SIZE", "$FMCAP_RING_CONSUMERS"}},
		{[]string{"fmring", "info", "--help"}, []string{"$FMCAP_RING_PATH"}},
		{[]string{"fminject", "--help"}, []string{"$FMCAP_FMINJECT_RING, $FMCAP_RING_PATH", "$FMCAP_FMINJECT_PPS"}},
		{[]string{"fmslice", "--help"}, []string{"$FMCAP_SLICE_STORE, $FMCAP_WRITER_STORE", "$FMCAP_SLICE_FROM"}},
		{[]string{"fmslice", "flows", "--help"}, []string{"$FMCAP_SLICE_STORE, $FMCAP_WRITER_STORE"}},
		{[]string{"fmslice", "info", "--help"}, []string{"$FMCAP_SLICE_STORE, $FMCAP_WRITER_STORE"}},
		{[]string{"fmctl", "--help"}, []string{"$FMCAP_FMCTL_SOCKET, $FMCAP_FWD_CONTROL", "$FMCAP_CONFIG"}},
		{[]string{"fwd", "--help"}, []string{"$FMCAP_FWD_CONTROL", "$FMCAP_FWD_RING, $FMCAP_RING_PATH", "$FMCAP_CONFIG"}},
	} {
		out := string(run(t, bin(c.args[0]), c.args[1:]...))
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: help lacks %s", strings.Join(c.args, " "), w)
			}
		}
		if strings.Contains(out, "FMCAP_FWD_SOCKET") || strings.Contains(out, "$FMCAP_STORE") || strings.Contains(out, "$FMCAP_RING]") {
			t.Errorf("%s: help names a variable outside the scheme:\n%s", strings.Join(c.args, " "), out)
		}
	}
	ring := makeRing(t, "64MiB")
	st := store(t, []string{testdata("ns-http.pcap")})
	cmd := func(env string, name string, args ...string) string {
		c := exec.Command(bin(name), args...)
		c.Env = append(os.Environ(), env)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("%s %s %v: %v", env, name, args, err)
		}
		return string(out)
	}
	if out := cmd("FMCAP_RING_PATH="+ring, "fmring", "info"); !strings.Contains(out, ring) {
		t.Errorf("fmring info with FMCAP_RING_PATH:\n%s", out)
	}
	want := run(t, bin("fmslice"), "--store", st, "-q")
	if got := cmd("FMCAP_WRITER_STORE="+st, "fmslice", "-q"); !bytes.Equal([]byte(got), want) || len(want) < 1000 {
		t.Errorf("fmslice with FMCAP_WRITER_STORE: %d bytes, with --store %d", len(got), len(want))
	}
}

// fmslice takes its flags after the filter too.
func TestFlagsAfterFilter(t *testing.T) {
	st := store(t, []string{testdata("ns-http.pcap")})
	want := run(t, bin("fmslice"), "--store", st, "-q", "tcp", "port", "8080")
	got := run(t, bin("fmslice"), "tcp", "port", "8080", "--store", st, "-q")
	if !bytes.Equal(got, want) || len(want) < 1000 {
		t.Fatalf("flags after the filter: %d bytes, before: %d", len(got), len(want))
	}
	if out := string(run(t, bin("fmctl"), "rules", "add", "--help")); !strings.Contains(out, "(required)") || regexp.MustCompile(`--id value.*default`).MatchString(out) {
		t.Errorf("fmctl rules add --help does not show --id as required:\n%s", out)
	}
}

// A missing ring: each command says how to create it, and nothing is
// created (not the writer's store, not the indexer's directory).
func TestMissingRing(t *testing.T) {
	dir := t.TempDir()
	ring := filepath.Join(dir, "no-ring")
	st := filepath.Join(dir, "store")
	for _, args := range [][]string{
		{"writer", "--ring", ring, "--store", st, "--metrics", ""},
		{"indexer", "--ring", ring, "--store", st, "--metrics", ""},
		{"fminject", "--ring", ring, testdata("ns-http.pcap")},
		{"fmring", "info", "--ring", ring},
	} {
		_, stderr, code := runCode(t, bin(args[0]), args[1:]...)
		if code == 0 || !strings.Contains(stderr, "fmring create --ring "+ring) {
			t.Errorf("%s: exit %d, stderr %q: want an error with the fmring create command", args[0], code, stderr)
		}
		if _, err := os.Stat(st); err == nil {
			t.Fatalf("%s created %s although the ring is missing", args[0], st)
		}
	}
}
