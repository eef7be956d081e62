// Package progress draws a one-line progress report (done/total, rate,
// time left) on stderr while a long command runs, when stderr is a
// terminal: a person waiting sees it, a script or a log never does.
package progress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// every is how often the line is redrawn at most.
const every = 250 * time.Millisecond

// Meter is a progress line. The zero of a disabled Meter (nil) is valid:
// every method does nothing.
type Meter struct {
	w     io.Writer
	name  string // the command, first on the line
	unit  string // what is counted ("packets")
	total uint64 // 0: unknown
	start time.Time
	last  time.Time
	drawn bool
}

// New returns a meter drawing on f when f is a terminal and quiet is not
// set, else nil. total is what done will reach (0: unknown).
func New(f *os.File, quiet bool, name, unit string, total uint64) *Meter {
	if quiet || !IsTerminal(f) {
		return nil
	}
	now := time.Now()
	return &Meter{w: f, name: name, unit: unit, total: total, start: now, last: now}
}

// IsTerminal says whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Update redraws the line (at most every 250 ms): done of total units, and
// frac, the part of the work done when that is not done/total (-1: use
// done/total), from which the time left is estimated.
func (m *Meter) Update(done uint64, frac float64) {
	if m == nil {
		return
	}
	now := time.Now()
	if now.Sub(m.last) < every {
		return
	}
	m.last = now
	fmt.Fprint(m.w, "\r", Line(m.name, m.unit, done, m.total, frac, now.Sub(m.start)), "\x1b[K")
	m.drawn = true
}

// Done clears the line, so what follows starts on a clean one; the next
// Update draws it again.
func (m *Meter) Done() {
	if m == nil || !m.drawn {
		return
	}
	fmt.Fprint(m.w, "\r\x1b[K")
	m.drawn = false
}

// Handler wraps h so that the line is cleared before each log record (and
// drawn again by the next Update): a log line never starts in the middle
// of the progress line. With a nil meter it is h.
func (m *Meter) Handler(h slog.Handler) slog.Handler {
	if m == nil {
		return h
	}
	return clearing{h, m}
}

type clearing struct {
	slog.Handler
	m *Meter
}

func (c clearing) Handle(ctx context.Context, r slog.Record) error {
	c.m.Done()
	return c.Handler.Handle(ctx, r)
}

func (c clearing) WithAttrs(as []slog.Attr) slog.Handler {
	return clearing{c.Handler.WithAttrs(as), c.m}
}

func (c clearing) WithGroup(name string) slog.Handler {
	return clearing{c.Handler.WithGroup(name), c.m}
}

// Line is the text of a progress line: "NAME: DONE/TOTAL UNIT (P%), R UNIT/s, T left".
func Line(name, unit string, done, total uint64, frac float64, elapsed time.Duration) string {
	if frac < 0 && total > 0 {
		frac = float64(done) / float64(total)
	}
	s := fmt.Sprintf("%s: %d", name, done)
	if total > 0 {
		s += fmt.Sprintf("/%d", total)
	}
	s += " " + unit
	if frac >= 0 {
		s += fmt.Sprintf(" (%.1f%%)", 100*min(frac, 1))
	}
	if sec := elapsed.Seconds(); sec > 0 {
		s += fmt.Sprintf(", %.0f %s/s", float64(done)/sec, unit)
		if frac > 0 && frac < 1 {
			left := time.Duration(float64(elapsed) * (1 - frac) / frac)
			s += fmt.Sprintf(", %s left", left.Round(time.Second))
		}
	}
	return s
}
