package main

import (
	"bufio"
	"fmt"
	"math/rand"
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

func TestLockName(t *testing.T) {
	eal := []string{"--in-memory", "--vdev=net_af_packet0,iface=eth1", "--vdev", "net_af_packet1,qpairs=1,iface=eth2", "--vdev=net_null0"}
	for _, tc := range []struct {
		backend, device string
		want            string
	}{
		{"", "eth1", "@fmcap/port/eth1"},
		{"afpacket", "eth1", "@fmcap/port/eth1"},
		{"dpdk", "net_af_packet0", "@fmcap/port/eth1"}, // clashes with an AF_PACKET fwd on eth1
		{"dpdk", "net_af_packet1", "@fmcap/port/eth2"},
		{"dpdk", "0000:01:00.0", "@fmcap/pci/0000:01:00.0"},
		{"dpdk", "3B:00.1", "@fmcap/pci/3b:00.1"},
		{"dpdk", "net_null0", ""}, // private to the process
		{"dpdk", "net_ring0", ""},
	} {
		if got, _ := lockName(tc.backend, eal, Port{Name: "p", Device: tc.device}); got != tc.want {
			t.Errorf("lockName(%q, %q) = %q, want %q", tc.backend, tc.device, got, tc.want)
		}
	}
}

// The lock itself needs no privilege: two lockPorts in one process clash
// like two processes do, and the holder named is this process.
func TestPortLockHolderNamed(t *testing.T) {
	// Abstract names are shared by everyone in this network namespace,
	// other test runs included: a random device name keeps them apart.
	dev := fmt.Sprintf("fmt%08x", rand.Uint32())
	ports := []Port{{Name: "p0", Device: dev}}
	first, err := lockPorts("afpacket", nil, ports)
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	want := fmt.Sprintf("port p0: device %s is in use by PID %d (%s)", dev, os.Getpid(), strings.TrimSpace(string(comm)))
	for i := 0; i < 3; i++ { // the holder keeps answering
		if _, err := lockPorts("afpacket", nil, ports); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("second lock: %v, want an error saying %q", err, want)
		}
	}
	// All or nothing: a clash on the second port releases the first.
	other := fmt.Sprintf("fmt%08x", rand.Uint32())
	if _, err := lockPorts("afpacket", nil, []Port{{Name: "p1", Device: other}, {Name: "p0", Device: dev}}); err == nil {
		t.Fatal("second lock with a held port accepted")
	}
	if l, err := lockPorts("afpacket", nil, []Port{{Name: "p1", Device: other}}); err != nil {
		t.Fatalf("port of a refused lockPorts still held: %v", err)
	} else {
		l.close()
	}
	first.close()
	again, err := lockPorts("afpacket", nil, ports)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.close()
	// Two DPDK ports on one interface clash within one fwd.
	eal := []string{"--vdev=net_af_packet0,iface=" + dev, "--vdev=net_af_packet1,iface=" + dev}
	if _, err := lockPorts("dpdk", eal, []Port{{Name: "a", Device: "net_af_packet0"}, {Name: "b", Device: "net_af_packet1"}}); err == nil || !strings.Contains(err.Error(), "also port a's") {
		t.Errorf("two DPDK ports on one interface: %v", err)
	}
}

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
