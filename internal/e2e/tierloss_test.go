package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	fmstore "github.com/fmcap/fmcap/store"
)

// TestWriterLostToTier: a tiered store (nothing uploaded yet) on a disk
// too small for the capture: retention removes chunks before their upload
// to make room, and the writer's metric fmcap_retention_lost_to_tier_chunks_total
// counts exactly the chunks the retention log says it removed.
func TestWriterLostToTier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "fmcap-e2e", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	st := filepath.Join(mnt, "store")
	if err := os.Mkdir(st, 0o750); err != nil {
		t.Fatal(err)
	}
	// What fmupload writes on its first run: the store is tiered, and
	// nothing is uploaded.
	if err := fmstore.WriteUploaded(st, 0, "s3://bucket/prefix/node"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := makeRing(t, "64MiB")
	const n = 60000 // about 9 MB of pcap on a 4 MiB disk
	run(t, bin("fminject"), "--ring", r, "-q", "--keep-open", genCapture(t, n))
	w := exec.Command(bin("writer"), "--ring", r, "--store", st, "--log-level", "warn", "--metrics", addr,
		"--compress", "none", "--chunk-size", "512KiB", "--retain-bytes", "1TiB")
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	metric := func(text, name string) (float64, bool) {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(text)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return v, err == nil
	}
	var text string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not store %d packets in 2 minutes:\n%s", n, text)
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(b)
		if v, ok := metric(text, "fmcap_writer_packets_total"); ok && v == n {
			break
		}
	}
	removed, err := fmstore.RemovedRanges(st)
	if err != nil {
		t.Fatal(err)
	}
	lost, ok := metric(text, "fmcap_retention_lost_to_tier_chunks_total")
	if !ok || len(removed) == 0 || lost != float64(len(removed)) {
		t.Fatalf("lost to the tier: metric %v (present: %v); the retention log has %d removals:\n%s", lost, ok, len(removed), text)
	}
	for _, rm := range removed {
		if rm.Reason != "full" {
			t.Errorf("removal for %q: only a full disk may remove a chunk not uploaded", rm.Reason)
		}
	}
	t.Logf("%d chunks removed before their upload, all counted", len(removed))
}
