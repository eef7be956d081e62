package main

import (
	"strings"
	"testing"
)

func TestParseStep(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"1s", 1e9}, {"250ms", 250e6}, {"1m", 60e9}, {"1h30m", 5400e9}, {"1.5s", 1.5e9}, {"1ns", 1},
		{"0.000000001s", 1}, {"1d", 86400e9}, {"10us", 10e3}, {"10µs", 10e3},
	} {
		if got, err := parseStep(tc.in); err != nil || got != tc.want {
			t.Errorf("parseStep(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0s", "0.0000000001s", "1", "s", "-1s", "1x", "now", "1.2.3s", "2026-01-01", " 1s", "1s ", "9999999999999d"} {
		if got, err := parseStep(in); err == nil {
			t.Errorf("parseStep(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "step") {
			t.Errorf("parseStep(%q): %v: the error does not name --step", in, err)
		}
	}
}

// FuzzParseStep: any input gives a positive step or an error naming
// --step, never a panic; a step it accepts prints back as the same value.
func FuzzParseStep(f *testing.F) {
	for _, s := range []string{"1s", "250ms", "1h30m", "1.5d", "0s", "1", "-1s", "µs", "1e9s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseStep(s)
		if err != nil {
			if !strings.Contains(err.Error(), "step") {
				t.Fatalf("parseStep(%q): %v", s, err)
			}
			return
		}
		if v <= 0 {
			t.Fatalf("parseStep(%q) = %d", s, v)
		}
		if w, err := parseStep(itoa(v) + "ns"); err != nil || w != v {
			t.Fatalf("parseStep(%q) = %d, but %dns gives %d, %v", s, v, v, w, err)
		}
	})
}

func itoa(v int64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		if v /= 10; v == 0 {
			return string(b)
		}
	}
}
