package shmring

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Who holds a role (the producer, or a consumer slot). A PID alone does not
// say: after a holder dies without releasing its role (kill -9, a crash),
// the kernel may give its PID to another process, which then seems to hold
// the role, and the writer or indexer restarting for it is locked out until
// that unrelated process ends. So a role's holder is its owner word: the
// PID in the low 32 bits and, in the high 32, the low 32 bits of that
// process's start time (clock ticks after boot, field 22 of /proc/PID/stat).
// A process with the same PID and another start time is another process.
// The word is claimed by compare-and-swap, so two claimants of a dead
// holder's role cannot both win; the 4-byte pid field beside it is a copy
// for display (fmring info) and for older tools.

// owner is one role's owner word and its pid copy.
type owner struct {
	word *atomicU64 // pid | start<<32; CAS by claimants, cleared by the holder
	pid  *atomicU32 // copy of the holder's pid, written after the claim
}

func (r *Ring) producerOwner() owner {
	return owner{u64(r.mem, offProdOwner), u32(r.mem, offProdPID)}
}

func (s slot) owner() owner {
	return owner{u64(s.mem, s.base+slotOwner), u32(s.mem, s.base+slotPID)}
}

// self is this process's owner word.
func self() uint64 {
	pid := uint32(os.Getpid())
	start, _ := startTime(pid)
	return uint64(pid) | uint64(start)<<32
}

// claim takes the role for this process. A holder that is gone (no such
// process, or a process that started at another time under its PID) is
// taken over; a live one is an error.
func (o owner) claim(role, path string) error {
	me := self()
	for {
		old := o.word.Load()
		if old == me {
			return fmt.Errorf("ring %q: %s: %w by this process", path, role, ErrAttached)
		}
		if old != 0 && holderAlive(old) {
			return fmt.Errorf("ring %q: %s: %w by pid %d", path, role, ErrAttached, uint32(old))
		}
		if o.word.CompareAndSwap(old, me) {
			o.pid.Store(uint32(me))
			return nil
		}
	}
}

// release gives the role up: the display copy first, so that it never
// names a process that no longer holds the role.
func (o owner) release() {
	o.pid.Store(0)
	o.word.Store(0)
}

// holder is the live holder's pid, 0 when the role is free or its holder
// is gone.
func (o owner) holder() uint32 {
	if w := o.word.Load(); w != 0 && holderAlive(w) {
		return uint32(w)
	}
	return 0
}

// holderAlive says whether the process an owner word names still runs.
func holderAlive(w uint64) bool {
	pid, start := uint32(w), uint32(w>>32)
	if !pidAlive(pid) {
		return false
	}
	got, err := startTime(pid)
	if err != nil || start == 0 {
		// No /proc, or /proc hides other users' processes (hidepid), or no
		// start time was recorded: the PID is all there is to go by.
		return true
	}
	return got == start
}

func pidAlive(pid uint32) bool {
	err := syscall.Kill(int(pid), 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// startTime is the low 32 bits of the process's start time in clock ticks
// after boot (/proc/PID/stat, field 22). The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func startTime(pid uint32) (uint32, error) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(b)
}

func parseStartTime(stat []byte) (uint32, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no command name")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 20 {
		return 0, errors.New("/proc/PID/stat: too few fields")
	}
	v, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/PID/stat: start time: %w", err)
	}
	return uint32(v), nil
}
