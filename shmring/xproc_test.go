package shmring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The cross-process tests re-execute this test binary: FMRING_ROLE selects
// the consumer role, FMRING_PATH the ring. A role prints one JSON result line.

type roleResult struct {
	Got       uint64 // records delivered (lossy: verified)
	Missed    uint64 // lossy: records reported by Gap
	Torn      uint64 // lossy: bad records that Verify then voided
	Overruns  uint64
	FirstSeq  uint64
	LastSeq   uint64
	Err       string
	Seconds   float64
	CheckData bool
}

func TestMain(m *testing.M) {
	if role := os.Getenv("FMRING_ROLE"); role != "" {
		res := runRole(role, os.Getenv("FMRING_PATH"), os.Getenv("FMRING_CHECK") != "0")
		json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runRole(name, path string, check bool) (res roleResult) {
	maxLen, _ := strconv.Atoi(os.Getenv("FMRING_MAXLEN"))
	r, err := Open(path)
	if err != nil {
		res.Err = err.Error()
		return
	}
	defer r.Close()
	c, err := r.Attach(name)
	if err != nil {
		res.Err = err.Error()
		return
	}
	defer c.Close()
	buf := make([]byte, 1<<17)
	start := time.Now()
	var batch, torn uint64
	var batchFirst uint64
	expect := r.FirstSeq()
	for {
		rec, err := c.Next()
		switch err {
		case nil:
		case ErrEmpty:
			if c.Lossy() {
				if c.Verify() == nil {
					res.Got += batch
					torn = 0
				} else {
					res.Torn += torn
				}
				batch, torn = 0, 0
				c.Commit()
			} else {
				c.Commit()
			}
			time.Sleep(20 * time.Microsecond)
			continue
		case ErrOverrun:
			res.Torn += torn
			batch, torn = 0, 0
			continue
		case io.EOF:
			if c.Lossy() && c.Verify() == nil {
				res.Got += batch
			}
			res.Seconds = time.Since(start).Seconds()
			res.Overruns = r.Info().Consumers[slotIndex(r, name)].Overruns
			c.Commit()
			return
		default:
			res.Err = err.Error()
			return
		}
		if res.FirstSeq == 0 {
			res.FirstSeq = rec.Seq
		}
		res.LastSeq = rec.Seq
		if !c.Lossy() {
			if rec.Seq != expect || (check && !checkRecord(rec, buf, maxLen)) {
				res.Err = fmt.Sprintf("lossless: bad record seq %d, want %d", rec.Seq, expect)
				return
			}
			expect++
			res.Got++
			if res.Got%4096 == 0 {
				c.Commit()
			}
			continue
		}
		if lo, hi, ok := c.Gap(); ok {
			res.Missed += hi - lo + 1
		}
		if batch == 0 {
			batchFirst = rec.Seq
		}
		_ = batchFirst
		batch++
		if check && !checkRecord(rec, buf, maxLen) {
			torn++
		}
		if batch == 256 {
			if c.Verify() == nil {
				if torn != 0 {
					res.Err = fmt.Sprintf("lossy: %d torn records passed Verify", torn)
					return
				}
				res.Got += batch
				c.Commit()
			} else {
				res.Torn += torn
			}
			batch, torn = 0, 0
		}
	}
}

func slotIndex(r *Ring, name string) int {
	for i := 0; i < r.nslots; i++ {
		if r.slot(i).name() == name {
			return i
		}
	}
	return -1
}

func startRole(t testing.TB, path, name string, maxLen int, check bool) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// An arm64 test binary under qemu-user on another host
	// (scripts/arm64-test.sh): the kernel cannot run the child itself
	// without binfmt_misc, so the runner names the emulator, and the
	// child runs, in another process, under it.
	if w := strings.Fields(os.Getenv("FMCAP_TEST_EXEC_WRAPPER")); len(w) > 0 {
		cmd = exec.Command(w[0], append(w[1:], os.Args[0], "-test.run=^$")...)
	}
	chk := "1"
	if !check {
		chk = "0"
	}
	cmd.Env = append(os.Environ(), "FMRING_ROLE="+name, "FMRING_PATH="+path, "FMRING_MAXLEN="+strconv.Itoa(maxLen), "FMRING_CHECK="+chk)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

func waitRole(t testing.TB, cmd *exec.Cmd, out *bytes.Buffer) roleResult {
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v", cmd.Env[len(cmd.Env)-4], err)
	}
	var res roleResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("role output %q: %v", out.String(), err)
	}
	if res.Err != "" {
		t.Fatal(res.Err)
	}
	return res
}

// waitAttached waits until every consumer slot of r is held. A child that
// fails before attaching prints its error where waitRole reads it; here it
// is seen as a slot still free after half a minute.
func waitAttached(t testing.TB, r *Ring) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		all := true
		for _, ci := range r.Info().Consumers {
			all = all && ci.PID != 0
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers not attached after 30 s: %+v", r.Info().Consumers)
		}
	}
}

// TestCrossProcessStress: millions of checksummed records from a Live
// producer in this process to a lossless and a lossy consumer in two other
// processes. The lossless one must get every record written, in order,
// intact; drops must be counted exactly; the lossy one must never accept a
// torn record, and what it got plus what it was told it missed never
// exceeds what was written.
func TestCrossProcessStress(t *testing.T) {
	n := uint64(3_000_000)
	if testing.Short() {
		n = 300_000
	}
	const maxLen = 200
	r, path := newRing(t, Config{DataSize: 1 << 20, MaxCaplen: 4096, Consumers: []ConsumerSpec{{"writer", Lossless}, {"indexer", Lossy}}})
	wc, wout := startRole(t, path, "writer", maxLen, true)
	ic, iout := startRole(t, path, "indexer", maxLen, true)
	// Produce only once both have attached: a child slow to start (under
	// qemu, on a loaded machine) otherwise finds the ring closed, and the
	// lossy one, lapped before its first read, reads nothing at all.
	waitAttached(t, r)
	p, err := r.NewProducer(Live)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	seq := r.FirstSeq()
	var attempts, drops uint64
	for attempts = 0; attempts < n; attempts++ {
		if writeFor(p, seq, buf, maxLen) {
			seq++
		} else {
			drops++
			if drops%64 == 0 {
				time.Sleep(10 * time.Microsecond) // let the consumers breathe so not everything drops
			}
		}
		if attempts%64 == 0 {
			p.Publish()
		}
	}
	p.Close()
	w := waitRole(t, wc, wout)
	ix := waitRole(t, ic, iout)
	written := seq - r.FirstSeq()
	in := r.Info()
	t.Logf("attempted %d written %d drops %d; writer got %d; indexer got %d missed %d torn-voided %d overruns %d",
		n, written, drops, w.Got, ix.Got, ix.Missed, ix.Torn, ix.Overruns)
	if written+drops != n || in.Drops != drops || in.Written != written {
		t.Fatalf("drop accounting: written %d + drops %d != %d (ring says %d, %d)", written, drops, n, in.Written, in.Drops)
	}
	if w.Got != written || w.LastSeq != seq-1 {
		t.Fatalf("lossless consumer got %d (last %d), want %d (last %d)", w.Got, w.LastSeq, written, seq-1)
	}
	if ix.Got+ix.Missed > written || ix.Got == 0 {
		t.Fatalf("lossy consumer got %d + missed %d, written %d", ix.Got, ix.Missed, written)
	}
	if ix.Overruns == 0 && ix.Got != written {
		t.Fatalf("lossy consumer lost records without an overrun: got %d of %d", ix.Got, written)
	}
}

// TestBlockingProducerLosesNothing: a blocking producer (fminject) and two
// lossless consumers in other processes: every record arrives at both.
func TestBlockingProducerLosesNothing(t *testing.T) {
	const n, maxLen = 1_000_000, 1500
	r, path := newRing(t, Config{DataSize: 1 << 20, MaxCaplen: 2048, Consumers: []ConsumerSpec{{"a", Lossless}, {"b", Lossless}}})
	ac, aout := startRole(t, path, "a", maxLen, true)
	bc, bout := startRole(t, path, "b", maxLen, true)
	p, _ := r.NewProducer(Blocking)
	buf := make([]byte, 2048)
	for s := uint64(1); s <= n; s++ {
		if !writeFor(p, s, buf, maxLen) {
			t.Fatal("blocking write failed")
		}
		if s%32 == 0 {
			p.Publish()
		}
	}
	p.Close()
	a, b := waitRole(t, ac, aout), waitRole(t, bc, bout)
	if a.Got != n || b.Got != n || r.Info().Drops != 0 {
		t.Fatalf("got %d and %d of %d, drops %d", a.Got, b.Got, n, r.Info().Drops)
	}
}
