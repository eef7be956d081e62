// Package timespec parses the times people give fmcap tools (--from, --to)
// into Unix nanoseconds, exactly: no float ever touches a timestamp.
//
// Accepted forms:
//
//	2026-11-25T10:00:00Z              RFC 3339, with optional fraction (up to 9 digits) and zone
//	2026-11-25T10:00:00.123+01:00
//	2026-11-25 10:00:00.5             a space for the T; no zone means UTC
//	2026-11-25                        midnight UTC
//	1764064800  1764064800.123456789  Unix seconds, with an optional fraction
//	now                               the current time
//	-5m  +1h30m  now-90s  now-1.5d    relative to now; units ns us µs ms s m h d
package timespec

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Parse returns s as Unix nanoseconds, with now as the base for relative forms.
func Parse(s string, now time.Time) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("time %q: empty", s)
	}
	if t == "now" {
		return now.UnixNano(), nil
	}
	if rest, ok := strings.CutPrefix(t, "now"); ok {
		t = rest
	}
	if t[0] == '-' || t[0] == '+' {
		d, err := parseDuration(t[1:])
		if err != nil {
			return 0, fmt.Errorf("time %q: %w", s, err)
		}
		if t[0] == '-' {
			d = -d
		}
		n := now.UnixNano()
		if d > 0 && n > math.MaxInt64-d || d < 0 && n < math.MinInt64-d {
			return 0, fmt.Errorf("time %q: out of range", s)
		}
		return n + d, nil
	}
	if isUnix(t) {
		return parseUnix(s, t)
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05Z07:00"} {
		if v, err := time.Parse(layout, t); err == nil {
			return v.UnixNano(), nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if v, err := time.ParseInLocation(layout, t, time.UTC); err == nil {
			return v.UnixNano(), nil
		}
	}
	return 0, fmt.Errorf("time %q: use RFC 3339 (2026-11-25T10:00:00.5Z), Unix seconds (1764064800.5), now, or a relative time (-5m, now-1h)", s)
}

func isUnix(t string) bool {
	dot := false
	for i, c := range []byte(t) {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0:
			dot = true
		default:
			return false
		}
	}
	return true
}

func parseUnix(orig, t string) (int64, error) {
	sec, frac, _ := strings.Cut(t, ".")
	if len(frac) > 9 {
		return 0, fmt.Errorf("time %q: more than 9 fraction digits", orig)
	}
	var s int64
	for _, c := range []byte(sec) {
		if s > (math.MaxInt64/1_000_000_000-9)/10 {
			return 0, fmt.Errorf("time %q: out of range", orig)
		}
		s = s*10 + int64(c-'0')
	}
	var ns int64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			ns += int64(frac[i] - '0')
		}
	}
	return s*1e9 + ns, nil
}

var units = []struct {
	name string
	ns   int64
}{
	{"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9},
}

// parseDuration reads a sequence of number+unit terms ("1h30m", "1.5d").
func parseDuration(t string) (int64, error) {
	if t == "" {
		return 0, fmt.Errorf("no duration after the sign")
	}
	var total int64
	for t != "" {
		i := 0
		for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
			i++
		}
		num := t[:i]
		t = t[i:]
		j := 0
		for j < len(t) && !(t[j] >= '0' && t[j] <= '9' || t[j] == '.') {
			j++
		}
		unit := t[:j]
		t = t[j:]
		if num == "" || unit == "" || strings.Count(num, ".") > 1 || num == "." {
			return 0, fmt.Errorf("bad duration term %q (use e.g. 5m, 1h30m, 1.5d)", num+unit)
		}
		var per int64
		for _, u := range units {
			if u.name == unit {
				per = u.ns
			}
		}
		if per == 0 {
			return 0, fmt.Errorf("unknown unit %q (use ns, us, ms, s, m, h, d)", unit)
		}
		whole, frac, _ := strings.Cut(num, ".")
		var w int64
		for _, c := range []byte(whole) {
			if w > (math.MaxInt64/per)/10 {
				return 0, fmt.Errorf("duration out of range")
			}
			w = w*10 + int64(c-'0')
		}
		v := w * per
		// The fraction, exactly, down to the nanosecond.
		scale := per
		for _, c := range []byte(frac) {
			scale /= 10
			v += int64(c-'0') * scale
		}
		if v < 0 || total > math.MaxInt64-v {
			return 0, fmt.Errorf("duration out of range")
		}
		total += v
	}
	return total, nil
}

// Range parses a --from/--to pair: empty means the beginning or the end of
// time. It refuses a range that ends before it starts (EmptyRange says the
// same of one that ends where it starts, for commands that refuse that too).
func Range(from, to string) (int64, int64, error) {
	now := time.Now()
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	var err error
	if from != "" {
		if lo, err = Parse(from, now); err != nil {
			return 0, 0, fmt.Errorf("--from: %w", err)
		}
	}
	if to != "" {
		if hi, err = Parse(to, now); err != nil {
			return 0, 0, fmt.Errorf("--to: %w", err)
		}
	}
	if hi < lo {
		return 0, 0, EmptyRange(from, to)
	}
	return lo, hi, nil
}

// EmptyRange is the error for a --from/--to pair that holds no time.
func EmptyRange(from, to string) error {
	return fmt.Errorf("--from %s is not before --to %s: the range [from, to) is empty", from, to)
}
