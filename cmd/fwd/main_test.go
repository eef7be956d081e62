package main

// The command as a whole, re-executing the test binary as fwd (so nothing
// is built): what needs main itself, the flags and the exit status.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fmcap/fmcap/internal/ctl"
	"github.com/fmcap/fmcap/internal/testnet"
)

// TestHelperFwd is the fwd command, run by TestSecondFwdRefused in a
// network namespace (the test binary re-executed, so nothing is built).
func TestHelperFwd(t *testing.T) {
	args := os.Getenv("FMCAP_TEST_FWD_ARGS")
	if args == "" {
		t.Skip("helper process for TestSecondFwdRefused")
	}
	os.Args = append([]string{"fwd"}, strings.Split(args, "\n")...)
	main()
	os.Exit(0)
}

// A second fwd on a device a running fwd holds refuses to start, naming
// the first one's PID and command; the first one carries on.
func TestSecondFwdRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and a veth pair (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	ns := testnet.Prefix("fmlk")
	ipc := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ipc("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipc("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ipc("-n", ns, "link", "set", "v0", "up")
	ipc("-n", ns, "link", "set", "v1", "up")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fmcap.yaml")
	src := "fwd:\n  metrics: \"\"\n  ports:\n    - {name: p0, device: v0, addresses: [198.18.1.1/24]}\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	fwd := func(control string) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperFwd$")
		cmd.Env = append(os.Environ(), "FMCAP_TEST_FWD_ARGS="+strings.Join([]string{"--config", cfg, "--control", filepath.Join(dir, control)}, "\n"))
		return cmd
	}
	first := fwd("c1")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), "msg=forwarding") {
				up <- true
				sent = true
			}
		}
		if !sent {
			up <- false
		}
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatal("first fwd exited before forwarding")
		}
	case <-time.After(60 * time.Second): // a busy machine
		t.Fatal("first fwd not forwarding after 60 s")
	}
	out, err := fwd("c2").CombinedOutput()
	if err == nil {
		t.Fatalf("second fwd on v0 started:\n%s", out)
	}
	// ip netns exec execs, so the first fwd's PID is the one we started.
	want := "port p0: device v0 is in use by PID " + strconv.Itoa(first.Process.Pid) + " (fwd.test)"
	if !strings.Contains(string(out), want) {
		t.Errorf("second fwd said:\n%s\nwant %q", out, want)
	}
	t.Logf("second fwd: %s", out)
	if _, err := ctl.Call(filepath.Join(dir, "c1"), ctl.Request{Cmd: "rules.list"}); err != nil {
		t.Errorf("first fwd no longer answers: %v", err)
	}
}
