package fwd

import (
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
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
