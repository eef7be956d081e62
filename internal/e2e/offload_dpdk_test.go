package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOffloadsDPDK is TestOffloadsAFPacket on the DPDK backend: fwd built
// with -tags dpdk, its ports net_af_packet vdevs over the same veths,
// whose TPACKET frames hold a whole 64 KiB super-frame (framesz and
// blocksz as fwd/dpdk.go explains: a frame that fits the largest mbuf, a
// block it tiles). The PMD
// gives fwd no offload metadata and offers no TSO: fwd recognises
// super-frames and partial checksums from the frames and segments in
// software.
func TestOffloadsDPDK(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
	fwdDPDK := buildFwdDPDK(t)
	for _, gro := range []bool{false, true} {
		t.Run(fmt.Sprintf("gro=%v", gro), func(t *testing.T) {
			tp := newTopoWith(t, topoOpts{offloads: true, fwdGRO: gro})
			const ring = "framesz=65408,blocksz=2093056,framecnt=512"
			eal := []string{"--no-huge", "-m", "256", "--no-pci", "-l", "1", "--file-prefix=" + tp.nsF,
				"--vdev=net_af_packet0,iface=" + tp.f0 + "," + ring, "--vdev=net_af_packet1,iface=" + tp.f1 + "," + ring}
			offloadSuite(t, tp, fwdDPDK, "dpdk", eal, [2]string{"net_af_packet0", "net_af_packet1"})
		})
	}
}

// buildFwdDPDK builds fwd with -tags dpdk for this test, or skips it where
// DPDK's development files are missing.
func buildFwdDPDK(t *testing.T) string {
	t.Helper()
	if err := exec.Command("pkg-config", "--exists", "libdpdk").Run(); err != nil {
		t.Skip("libdpdk-dev not installed (make test installs it as root)")
	}
	fwdDPDK := filepath.Join(t.TempDir(), "fwd-dpdk")
	build := exec.Command("go", "build", "-tags", "dpdk", "-o", fwdDPDK, "github.com/fmcap/fmcap/cmd/fwd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fwd with DPDK: %v\n%s", err, out)
	}
	return fwdDPDK
}
