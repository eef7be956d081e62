// Package cliutil holds what every fmcap command's main shares: the one
// configuration loader (config.go: precedence; file.go: the file and its
// keys; decode.go: typed sections), the environment's names (env.go), the
// logger and the parsing of sizes.
package cliutil

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/fmcap/fmcap/internal/fsmode"
)

// Logger is the one logger a command builds in main and passes down: text to
// stderr at the given level.
func Logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// ParseSize reads a byte count: a number with an optional unit, binary
// (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB, or k, M, G, T); "B" alone
// or no unit means bytes.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	mult := map[string]uint64{
		"": 1, "B": 1,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"K": 1e3, "KB": 1e3, "k": 1e3, "kB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
	}[strings.TrimSpace(t[i:])]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit (use KiB, MiB, GiB, TiB, KB, MB, GB, TB)", s)
	}
	if n > ^uint64(0)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// CPUProfile starts a CPU profile into path (for benchmarks); the returned
// function stops it. An empty path does nothing.
func CPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := fsmode.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// RingMissing turns a ring that does not exist into an error that says how
// to make one; other errors pass unchanged. Every command that opens a ring
// checks it before creating anything (the writer's store, the indexer's
// directory), so a mistyped path leaves nothing behind.
func RingMissing(path string, err error) error {
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fmt.Errorf("ring %s does not exist: create it first with\n"+
		"  fmring create --ring %s --size 256MiB --consumer writer:lossless --consumer indexer:lossy\n"+
		"(or fmring create --config FILE, whose ring: section declares them)", path, path)
}

// CheckRing fails with RingMissing's hint when there is no file at path.
func CheckRing(path string) error {
	_, err := os.Stat(path)
	return RingMissing(path, err)
}
