package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDPDKBenchGen runs bench/gwlb-dpdk.sh's setting small: fwd's own
// generator into a ring-pair port ("ringpair:NAME", two rte_rings, no
// kernel), a GWLB appliance port that captures and returns every frame,
// and a 1-1 rule out of a net_null port that captures egress. Every
// generated frame must be received once, forwarded (returned) once and
// captured once: a return that came back in (as on a net_ring loopback),
// a frame lost in the rings, or a capture drop shows in the counts.
func TestDPDKBenchGen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for DPDK's EAL (CI runs as root)")
	}
	fwdDPDK := buildFwdDPDK(t)
	const n = 200000
	for _, c := range []struct{ name, ports string }{
		{"gwlb", `
    - name: g0
      device: ringpair:g0
      addresses: [198.18.1.2/24]
      gwlb: {rule: 1, capture: ingress}`},
		{"rule", `
    - name: p0
      device: ringpair:p0
      addresses: [198.18.1.1/24]
      neighbors: {198.18.1.2: "02:00:00:00:00:aa"}
    - name: p1
      device: net_null0
      addresses: [198.18.2.1/24]
      neighbors: {198.18.2.2: "02:00:00:00:00:bb"}
  rules:
    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.2, capture: egress}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ring := filepath.Join(dir, "ring")
			run(t, bin("fmring"), "create", "--ring", ring, "--size", "64MiB", "--consumer", "idx:lossy")
			cfg := filepath.Join(dir, "fwd.yaml")
			y := fmt.Sprintf(`ring:
  path: %s
fwd:
  backend: dpdk
  metrics: ""
  dpdk:
    eal: ["--no-huge", "-m", "512", "--no-pci", "-l", "1", "--file-prefix=fmgen%d", "--vdev=net_null0,no-rx=1"]
  ports:%s
`, ring, os.Getpid(), c.ports)
			if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			// Without --bench-gen nothing would empty the pair's transmit
			// ring: refused at start.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if out, err := exec.CommandContext(ctx, fwdDPDK, "--config", cfg, "--log-level", "warn").CombinedOutput(); err == nil || !strings.Contains(string(out), "a ring pair is port 0 of fwd --bench-gen") {
				t.Fatalf("fwd on a ring pair without --bench-gen: %v\n%s\nwant it refused", err, out)
			}
			out, err := exec.Command(fwdDPDK, "--config", cfg, "--bench-gen", fmt.Sprint(n), "--log-level", "warn").CombinedOutput()
			if err != nil {
				t.Fatalf("fwd --bench-gen: %v\n%s", err, out)
			}
			want := fmt.Sprintf("generated %d, received %d, forwarded %d, captured %d, capture drops 0 in ", n, n, n, n)
			if !strings.Contains(string(out), want) {
				t.Fatalf("fwd --bench-gen printed\n%s\nwant a line starting %q", out, want)
			}
		})
	}
}
