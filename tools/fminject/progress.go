package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// progress shows, on a terminal, how far a phase has got: done/total, the
// rate and the time left. The reading loop only stores a count (set, every
// few thousand packets); a goroutine draws it four times a second. A nil
// *progress draws nothing, so callers need not check.
type progress struct {
	w     *os.File
	what  string
	bytes bool   // counts bytes, not packets
	total uint64 // 0: unknown
	done  atomic.Uint64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

const progressEvery = 250 * time.Millisecond

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// startProgress draws on w until end is called; nil unless enabled. It
// counts packets, or bytes when bytes is set.
func startProgress(w *os.File, enabled bool, what string, total uint64, bytes bool) *progress {
	if !enabled {
		return nil
	}
	p := &progress{w: w, what: what, bytes: bytes, total: total, start: time.Now(), stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K") // leave the line for what follows
				return
			case <-t.C:
				fmt.Fprint(p.w, "\r\033[K"+p.line(time.Since(p.start)))
			}
		}
	}()
	return p
}

// set records how many packets are done.
func (p *progress) set(n uint64) {
	if p != nil {
		p.done.Store(n)
	}
}

// end stops drawing and clears the line.
func (p *progress) end() {
	if p != nil {
		close(p.stop)
		p.wg.Wait()
	}
}

// line is the progress text after elapsed.
func (p *progress) line(elapsed time.Duration) string {
	done := p.done.Load()
	rate := float64(done) / elapsed.Seconds()
	s := fmt.Sprintf("fminject: %s ", p.what)
	switch {
	case p.bytes && p.total > 0:
		s += fmt.Sprintf("%d/%d MB (%d%%), %.0f MB/s", done>>20, p.total>>20, done*100/p.total, rate/(1<<20))
	case p.bytes:
		s += fmt.Sprintf("%d MB, %.0f MB/s", done>>20, rate/(1<<20))
	case p.total > 0:
		s += fmt.Sprintf("%d/%d packets (%d%%), %.0f packets/s", done, p.total, done*100/p.total, rate)
	default:
		s += fmt.Sprintf("%d packets, %.0f packets/s", done, rate)
	}
	if p.total > 0 && rate > 0 && done <= p.total {
		left := time.Duration(float64(p.total-done) / rate * float64(time.Second))
		s += ", " + left.Round(time.Second).String() + " left"
	}
	return s
}
