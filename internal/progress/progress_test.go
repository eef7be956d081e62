package progress

import (
	"os"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	for _, c := range []struct {
		done, total uint64
		frac        float64
		el          time.Duration
		want        string
	}{
		{250, 1000, -1, 10 * time.Second, "x: 250/1000 packets (25.0%), 25 packets/s, 30s left"},
		{1000, 1000, -1, 10 * time.Second, "x: 1000/1000 packets (100.0%), 100 packets/s"},
		{50, 0, 0.5, 2 * time.Second, "x: 50 packets (50.0%), 25 packets/s, 2s left"},
		{50, 0, -1, 0, "x: 50 packets"},
	} {
		if got := Line("x", "packets", c.done, c.total, c.frac, c.el); got != c.want {
			t.Errorf("got %q want %q", got, c.want)
		}
	}
}

// A meter on something that is not a terminal is off, and nil is safe.
func TestNotTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "p")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m := New(f, false, "x", "packets", 10); m != nil {
		t.Fatal("a meter on a file")
	}
	var m *Meter
	m.Update(1, -1)
	m.Done()
}
