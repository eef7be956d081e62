package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fmcap/fmcap/internal/fsmode"
	"golang.org/x/sys/unix"
)

// sliceOutput is where a slice's pcap goes: -w FILE, or "-",
// stdout unless it is a terminal. done closes it.
func sliceOutput(path string) (w io.Writer, done func() error, err error) {
	if path != "-" {
		// O_TRUNC: emptying the previous answer here (the kernel freeing
		// its pages) was also tried in a goroutine while the slice starts,
		// the first write waiting for it; no gain measured (bench/RESULTS.md).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fsmode.File)
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS); err == nil {
		return nil, nil, fmt.Errorf("refusing to write pcap to a terminal: use -w FILE, or pipe into tcpdump -r -")
	}
	return os.Stdout, func() error { return nil }, nil
}
