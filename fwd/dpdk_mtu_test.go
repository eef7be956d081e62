//go:build dpdk

package fwd

import (
	"fmt"
	"os"
	"testing"
)

// The PMD's MTU range is read through rte_eth_dev_info (net_null's is
// wide: every virtual PMD of DPDK 22.11 says 46..65535, so the refusal
// itself is TestMTUInRange's), and a configured MTU inside it is taken.
func TestDPDKMTURange(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("DPDK's EAL needs root (it locks its memory and opens /dev/hugepages or --no-huge memory)")
	}
	ports := []Port{{Name: "n0", Device: "net_null0", MTU: 9000}, {Name: "n1", Device: "net_null1"}}
	eal := []string{"--no-huge", "-m", "256", "--no-pci", "-l", "0", "--file-prefix", fmt.Sprintf("fmcap-mtu-%d", os.Getpid()),
		"--vdev", "net_null0", "--vdev", "net_null1", "--log-level", "1"}
	be, err := newDPDKBackend(eal, ports)
	if err != nil {
		t.Fatal(err)
	}
	b := be.(*dpdkBackend)
	defer b.close()
	lo, hi, drv, ok := mtuRange(b.ports[0])
	if !ok || drv != "net_null" || lo > 68 || hi < 9000 {
		t.Fatalf("net_null0's range: %d..%d, driver %q, ok %v; want a driver named net_null taking 68..9000", lo, hi, drv, ok)
	}
	if m := b.mtus(); m[0] != 9000 || m[1] != 1500 {
		t.Errorf("MTUs %v, want [9000 1500]", m)
	}
}
