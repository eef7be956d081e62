package timespec

import (
	"strings"
	"testing"
	"time"
)

var now = time.Unix(1764064800, 500_000_000)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"now", 1764064800_500_000_000},
		{"1764064800", 1764064800_000_000_000},
		{"1764064800.123456789", 1764064800_123_456_789},
		{"1764064800.1", 1764064800_100_000_000},
		{"0", 0},
		{"-5m", 1764064800_500_000_000 - 300e9},
		{"now-5m", 1764064800_500_000_000 - 300e9},
		{"+1h30m", 1764064800_500_000_000 + 5400e9},
		{"-1.5d", 1764064800_500_000_000 - 129600e9},
		{"-250ms", 1764064800_250_000_000},
		{"-1us", 1764064800_499_999_000},
		{"2025-11-25T10:00:00Z", 1764064800_000_000_000},
		{"2025-11-25T10:00:00.123456789Z", 1764064800_123_456_789},
		{"2025-11-25T11:00:00.5+01:00", 1764064800_500_000_000},
		{"2025-11-25 10:00:00", 1764064800_000_000_000},
		{"2025-11-25 10:00:00.000000001", 1764064800_000_000_001},
		{"2025-11-25", 1764028800_000_000_000},
		{" 1764064800 ", 1764064800_000_000_000},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in, now)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "yesterday", "-", "-5", "-5x", "1.2.3", "1764064800.1234567890", "2025-13-01", "99999999999999999999", "-99999999999d", "now-", "+.m", "1e9"} {
		if _, err := Parse(in, now); err == nil || !strings.Contains(err.Error(), "time") {
			t.Errorf("Parse(%q): got %v, want an error naming the time", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"now", "-5m", "1764064800.123", "2025-11-25T10:00:00.5Z", "now+1h30m", "2025-11-25", "-1.5d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s, now)
		if err != nil {
			return
		}
		// Unix forms must round-trip exactly.
		if isUnix(strings.TrimSpace(s)) && v >= 0 {
			back := time.Unix(0, v).UTC()
			if back.UnixNano() != v {
				t.Fatalf("%q: %d does not round-trip", s, v)
			}
		}
	})
}
