package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fmcap/fmcap/shmring"
	"github.com/fmcap/fmcap/store/chunk"
)

// TestRestartsUnderTraffic: while a TCP transfer runs through fwd, the
// writer is stopped (SIGTERM) and killed (kill -9) and restarted each
// time, then fwd itself the same way. The transfer completes intact; and
// every packet the ring took (fmring info: written) is in the store,
// exactly once, with the ring's own drop counter the only loss allowed.
func TestRestartsUnderTraffic(t *testing.T) {
	tp := newTopo(t)
	ring := makeRing(t, "64MiB")
	store := filepath.Join(t.TempDir(), "store")
	cfg := fwdConfig(t, tp, ring, "afpacket", nil, [2]string{tp.f0, tp.f1})
	// The control socket comes from the command line, overriding the file's.
	sock := filepath.Join(t.TempDir(), "override.sock")
	startFwd := func() *exec.Cmd {
		c := tp.start(tp.nsF, nil, "env", "FMCAP_FWD_METRICS=", bin("fwd"), "--config", cfg, "--log-level", "warn", "--control", sock)
		for i := 0; i < 100; i++ {
			if _, _, code := runCode(t, bin("fmctl"), "--socket", sock, "stats"); code == 0 {
				return c
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("fwd did not come up")
		return nil
	}
	startWriter := func() *exec.Cmd {
		w := exec.Command(bin("writer"), "--ring", ring, "--store", store, "--flush", "100ms", "--log-level", "warn", "--metrics", "")
		w.Stderr = os.Stderr
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Process.Kill(); w.Wait() })
		return w
	}
	startIndexer := func() *exec.Cmd {
		c := exec.Command(bin("indexer"), "--ring", ring, "--store", store, "--log-level", "warn", "--metrics", "", "--segment-age", "200ms")
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	fwd := startFwd()
	writer := startWriter()
	indexer := startIndexer()
	stop := func(c *exec.Cmd, sig syscall.Signal) {
		c.Process.Signal(sig)
		c.Wait()
	}
	var restartsDone time.Time
	tp.tcpTransfer(addrX, 5010, 400<<20, addrY, func() {
		steps := []func(){
			func() { stop(indexer, syscall.SIGTERM); indexer = startIndexer() },
			func() { stop(indexer, syscall.SIGKILL); indexer = startIndexer() },
			func() { stop(writer, syscall.SIGTERM); writer = startWriter() },
			func() { stop(writer, syscall.SIGKILL); writer = startWriter() },
			func() { stop(fwd, syscall.SIGTERM); fwd = startFwd() },
			func() { stop(fwd, syscall.SIGKILL); fwd = startFwd() },
		}
		for _, s := range steps {
			time.Sleep(150 * time.Millisecond)
			s()
		}
		restartsDone = time.Now()
	})
	// Say whether the transfer outlived the restarts (on a much faster
	// machine it might not, and then they happened on an idle link).
	t.Logf("the transfer ended %v after the last restart", time.Since(restartsDone).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	stop(fwd, syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond) // the writer catches up
	stop(writer, syscall.SIGTERM)
	stop(indexer, syscall.SIGTERM)

	var in shmring.Info
	if err := json.Unmarshal(run(t, bin("fmring"), "info", "--ring", ring, "--json"), &in); err != nil {
		t.Fatal(err)
	}
	if in.Written == 0 {
		t.Fatal("nothing captured")
	}
	// Seqs first..first+written-1 in the store, each once, in order.
	list, err := chunk.List(store)
	if err != nil {
		t.Fatal(err)
	}
	dec := chunk.NewDecoder()
	defer dec.Close()
	next := in.FirstSeq
	for _, c := range list {
		r, err := chunk.OpenReader(store, c, dec)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range r.Table.Frames {
			if f.FirstSeq != next {
				t.Fatalf("chunk %s: frame starts at seq %d, want %d", c.Name, f.FirstSeq, next)
			}
			next = f.LastSeq + 1
		}
		r.Close()
	}
	if got := next - in.FirstSeq; got != in.Written {
		t.Fatalf("store holds %d packets, the ring took %d", got, in.Written)
	}
	t.Logf("ring took %d packets, dropped %d (ring full while the writer was down); store holds all %d", in.Written, in.Drops, in.Written)
	// Queries are complete over what the indexer saw and what it missed.
	for _, f := range []string{"tcp port 5010 and tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "host 198.18.2.2 and tcp[tcpflags] & tcp-syn != 0"} {
		got := run(t, bin("fmslice"), "--store", store, "-q", f)
		want := run(t, bin("fmslice"), "--store", store, "--no-index", "-q", f)
		if !bytes.Equal(got, want) || len(got) < 24+16+54 {
			t.Fatalf("%q: indexed %d bytes, scanned %d", f, len(got), len(want))
		}
	}
}
