// Package sdnotify speaks systemd's notify protocol: readiness for
// Type=notify units and the watchdog for WatchdogSec=. Outside systemd
// ($NOTIFY_SOCKET unset) every call does nothing.
package sdnotify

import (
	"net"
	"os"
	"strconv"
	"time"
)

// Send sends one state line ("READY=1", "STOPPING=1", "STATUS=...").
func Send(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	c.Write([]byte(state))
	c.Close()
}

// Ready tells systemd the service is up.
func Ready() { Send("READY=1") }

// Watchdog pings systemd's watchdog at half the interval the unit asks for
// (WatchdogSec=, passed as $WATCHDOG_USEC). Call Ping from the loop that
// must stay alive, as often as convenient: it sends at most one datagram
// per half interval, and nothing when no watchdog is configured. Not safe
// for concurrent use.
type Watchdog struct {
	every time.Duration
	next  time.Time
}

// NewWatchdog reads the interval from the environment.
func NewWatchdog() *Watchdog {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 || os.Getenv("NOTIFY_SOCKET") == "" {
		return &Watchdog{}
	}
	return &Watchdog{every: time.Duration(us) * time.Microsecond / 2}
}

// Ping sends WATCHDOG=1 when due.
func (w *Watchdog) Ping(now time.Time) {
	if w == nil || w.every == 0 || now.Before(w.next) {
		return
	}
	w.next = now.Add(w.every)
	Send("WATCHDOG=1")
}
