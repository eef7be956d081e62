package writer

import (
	"testing"
	"time"
)

// Every episode is logged when it starts and when it ends; in between, at
// most one line per interval however many retries there are.
func TestEpisodeLogs(t *testing.T) {
	e := episode{every: 30 * time.Second}
	t0 := time.Unix(1_000_000, 0)
	if ended, _, _ := e.ok(t0); ended {
		t.Fatal("a success with no failure before ended an episode")
	}
	// Two episodes, one after the other: both are reported in full.
	for ep := 0; ep < 2; ep++ {
		start := t0.Add(time.Duration(ep) * time.Hour)
		var lines, firsts int
		// Retries every 10 ms, then every second (the store's backoff), for 95 s.
		now := start
		for i := 0; now.Sub(start) < 95*time.Second; i++ {
			if log, first := e.fail(now); log {
				lines++
				if first {
					firsts++
					if now != start {
						t.Fatalf("episode %d: first line at %v, want at its first failure", ep, now.Sub(start))
					}
				}
			}
			if i < 7 {
				now = now.Add(10 * time.Millisecond << i)
			} else {
				now = now.Add(time.Second)
			}
		}
		if firsts != 1 || lines != 4 { // at 0 s, then at least 30 s apart: 30, 60, 90
			t.Errorf("episode %d: got %d lines (%d first), want 4 (1 first)", ep, lines, firsts)
		}
		if d := e.failing(now); d < 95*time.Second {
			t.Errorf("episode %d: failing for %v, want at least 95 s", ep, d)
		}
		ended, lasted, fails := e.ok(now)
		if !ended || lasted < 95*time.Second || fails < 90 {
			t.Errorf("episode %d: end: got %v %v %d, want true, >= 95 s, >= 90 failures", ep, ended, lasted, fails)
		}
		if ended, _, _ := e.ok(now.Add(time.Second)); ended {
			t.Errorf("episode %d: ended twice", ep)
		}
	}
}
