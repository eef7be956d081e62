package shmring

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestParseStartTime(t *testing.T) {
	for _, c := range []struct {
		stat string
		want uint32
		ok   bool
	}{
		{"1234 (writer) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 12345678 900", 987654, true},
		// A command name with spaces and parentheses.
		{"77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4294967297 1 1", 1, true}, // low 32 bits of 2^32+1
		{"77 (x) R 1 2 3", 0, false},
		{"garbage", 0, false},
	} {
		got, err := parseStartTime([]byte(c.stat))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: got %d, %v; want %d, ok %v", c.stat, got, err, c.want, c.ok)
		}
	}
}

// A slot whose owner word names a live process with the right start time is
// held; the same pid with another start time is a process that reused the
// pid of a holder that died: its slot is taken over. Likewise for the
// producer.
func TestOwnerReusedPID(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: ownership falls back to the pid alone")
	}
	other := exec.Command("sleep", "60") // a live process that is not the holder
	if err := other.Start(); err != nil {
		t.Skipf("no sleep to stand in for another process: %v", err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	pid := uint32(other.Process.Pid)
	start, err := startTime(pid)
	if err != nil || start == 0 {
		t.Skipf("start time of pid %d: %d, %v", pid, start, err)
	}
	if slotOwner != 40 || offProdOwner != 160 { // as doc.go says
		t.Fatalf("owner words at slot offset %d and header offset %d, documented at 40 and 160", slotOwner, offProdOwner)
	}
	r, _ := newRing(t, Config{DataSize: 1 << 16, MaxCaplen: 2048, Consumers: []ConsumerSpec{{"writer", Lossless}}})
	le := binary.LittleEndian
	slotOwnerAt, prodOwnerAt := r.mem[offSlots+slotOwner:], r.mem[offProdOwner:]
	for _, c := range []struct {
		name  string
		start uint32
		held  bool
	}{
		{"live holder", start, true},
		{"pid reused (another start time)", start + 1, false},
		{"no start time recorded (pid only)", 0, true},
	} {
		word := uint64(pid) | uint64(c.start)<<32
		le.PutUint64(slotOwnerAt, word)
		le.PutUint32(r.mem[offSlots+slotPID:], pid)
		// taken says whether role was taken over, failing the test unless
		// that is what the case wants.
		taken := func(role string, err error) bool {
			switch {
			case c.held && !errors.Is(err, ErrAttached):
				t.Errorf("%s, %s: got %v, want ErrAttached", role, c.name, err)
			case !c.held && err != nil:
				t.Errorf("%s, %s: got %v, want the role taken over", role, c.name, err)
			}
			return err == nil
		}
		if cons, err := r.Attach("writer"); taken("consumer", err) {
			if w := le.Uint64(slotOwnerAt); uint32(w) != uint32(os.Getpid()) || w == word {
				t.Errorf("consumer, %s: owner word at slot offset 40 is %#x, want this process's", c.name, w)
			}
			if got := le.Uint32(r.mem[offSlots+slotPID:]); got != uint32(os.Getpid()) {
				t.Errorf("consumer, %s: pid copy %d, want %d", c.name, got, os.Getpid())
			}
			cons.Close()
			if le.Uint64(slotOwnerAt) != 0 || le.Uint32(r.mem[offSlots+slotPID:]) != 0 {
				t.Errorf("consumer, %s: Close left the owner set", c.name)
			}
		}
		le.PutUint64(prodOwnerAt, word)
		if p, err := r.NewProducer(Live); taken("producer", err) {
			p.Detach()
		}
	}
	// A holder that has exited is gone whatever its start time.
	other.Process.Kill()
	other.Wait()
	le.PutUint64(slotOwnerAt, uint64(pid)|uint64(start)<<32)
	if c, err := r.Attach("writer"); err != nil {
		t.Errorf("holder exited: got %v, want the slot taken over", err)
	} else {
		// And this process cannot attach the same slot twice.
		if _, err := r.Attach("writer"); !errors.Is(err, ErrAttached) {
			t.Errorf("second attach by the same process: got %v, want ErrAttached", err)
		}
		c.Close()
	}
}
