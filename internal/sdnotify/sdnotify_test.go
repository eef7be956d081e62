package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listen plays systemd: a unixgram socket at addr (a path, or @name for
// the abstract namespace), with NOTIFY_SOCKET naming it.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return c
}

// socketPath is a path for a socket in a directory of the test's own; a
// socket's path must fit 108 bytes, which a long $TMPDIR can exceed.
func socketPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 {
		d, err := os.MkdirTemp("/tmp", "sd")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return filepath.Join(dir, "notify")
}

// recv reads one datagram; the deadline only keeps a broken test from
// hanging, it is no part of what is tested.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("reading the notify socket: %v", err)
	}
	return string(b[:n])
}

// sentBy runs f and returns the datagrams it sent. A marker sent after it
// closes the list: datagrams sent one after the other by one goroutine
// arrive in that order, so whatever f sent is read before the marker, and
// "nothing sent" is seen without waiting for a timeout.
func sentBy(t *testing.T, c *net.UnixConn, f func()) []string {
	t.Helper()
	f()
	Send("MARK")
	var got []string
	for {
		s := recv(t, c)
		if s == "MARK" {
			return got
		}
		got = append(got, s)
	}
}

func TestSend(t *testing.T) {
	for _, name := range []string{"path", "abstract"} {
		t.Run(name, func(t *testing.T) {
			addr := socketPath(t)
			if name == "abstract" {
				// As systemd may give; the name is this process's own,
				// so parallel runs do not meet.
				addr = fmt.Sprintf("@fmcap-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
			}
			c := listen(t, addr)
			if got := sentBy(t, c, Ready); fmt.Sprint(got) != "[READY=1]" {
				t.Errorf("Ready sent %q, want [READY=1]", got)
			}
			if got := sentBy(t, c, func() { Send("STATUS=forwarding 2 rules") }); fmt.Sprint(got) != "[STATUS=forwarding 2 rules]" {
				t.Errorf("Send sent %q", got)
			}
		})
	}
}

// The watchdog pings at half of WATCHDOG_USEC, counted from the last ping,
// however often Ping is called; the times are given, so nothing here
// depends on the machine's speed.
func TestWatchdogInterval(t *testing.T) {
	c := listen(t, socketPath(t))
	t.Setenv("WATCHDOG_USEC", "3000000")
	w := NewWatchdog()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, step := range []struct {
		at   time.Duration
		sent bool
	}{
		{0, true}, // the first call pings at once
		{time.Millisecond, false},
		{1499 * time.Millisecond, false},
		{1500 * time.Millisecond, true},
		{2999 * time.Millisecond, false},
		{3100 * time.Millisecond, true},
		{4599 * time.Millisecond, false}, // 1.5 s after the last ping, not after 3 s
		{4600 * time.Millisecond, true},
	} {
		got := sentBy(t, c, func() { w.Ping(t0.Add(step.at)) })
		want := "[]"
		if step.sent {
			want = "[WATCHDOG=1]"
		}
		if fmt.Sprint(got) != want {
			t.Errorf("Ping at +%v sent %q, want %s", step.at, got, want)
		}
	}
}

// Without a usable interval the watchdog is off: Ping sends nothing even
// with a notify socket to send to.
func TestWatchdogOff(t *testing.T) {
	for _, usec := range []string{"", "0", "-1000000", "1s", "99999999999999999999"} {
		t.Run(usec, func(t *testing.T) {
			c := listen(t, socketPath(t))
			t.Setenv("WATCHDOG_USEC", usec)
			if usec == "" {
				os.Unsetenv("WATCHDOG_USEC") // unset, as outside systemd; t.Setenv restores it
			}
			w := NewWatchdog()
			if got := sentBy(t, c, func() { w.Ping(time.Now()) }); len(got) != 0 {
				t.Errorf("WATCHDOG_USEC=%q: Ping sent %q", usec, got)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		c := listen(t, socketPath(t))
		var w *Watchdog
		if got := sentBy(t, c, func() { w.Ping(time.Now()) }); len(got) != 0 {
			t.Errorf("nil Watchdog sent %q", got)
		}
	})
}

// A watchdog made outside systemd stays off when a socket appears later:
// the environment is read once, by NewWatchdog.
func TestWatchdogWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "2000000")
	w := NewWatchdog()
	c := listen(t, socketPath(t))
	if got := sentBy(t, c, func() { w.Ping(time.Now()) }); len(got) != 0 {
		t.Errorf("watchdog made without NOTIFY_SOCKET sent %q", got)
	}
}
