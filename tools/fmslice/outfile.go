package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fmcap/fmcap/internal/fsmode"
	"golang.org/x/sys/unix"
)

// sliceOutput is where a slice's pcap goes: -w FILE (an outFile), or "-",
// stdout unless it is a terminal. done closes it.
func sliceOutput(path string) (w io.Writer, done func() error, err error) {
	if path != "-" {
		o, err := createOutput(path)
		if err != nil {
			return nil, nil, err
		}
		return o, o.Close, nil
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS); err == nil {
		return nil, nil, fmt.Errorf("refusing to write pcap to a terminal: use -w FILE, or pipe into tcpdump -r -")
	}
	return os.Stdout, func() error { return nil }, nil
}

// outFile is -w FILE. An existing regular file is emptied by a goroutine
// while the slice starts (the store opened, the first frames read and
// decompressed), not by O_TRUNC in the open: emptying the previous answer
// is the kernel freeing its pages, as long as writing a new one (IMIX, 15
// MB: 9.8 of `cp`'s 14.8 ms over the old file, 5.0 to a new one), and done
// in the open it held up everything after it. The first write waits for
// it, so the bytes and the outcome are O_TRUNC's: the file holds the
// answer alone, and a slice that fails leaves it empty, as before.
type outFile struct {
	*os.File
	done chan error // the truncation's outcome, until taken
	err  error
}

func createOutput(path string) (*outFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, fsmode.File)
	if err != nil {
		return nil, err
	}
	o := &outFile{File: f}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		o.done = make(chan error, 1)
		go func() { o.done <- f.Truncate(0) }()
	}
	return o, nil
}

// wait takes the truncation's outcome.
func (o *outFile) wait() error {
	if o.done != nil {
		o.err = <-o.done
		o.done = nil
	}
	return o.err
}

func (o *outFile) Write(b []byte) (int, error) {
	if err := o.wait(); err != nil {
		return 0, err
	}
	return o.File.Write(b)
}

func (o *outFile) Close() error {
	err := o.wait()
	if cerr := o.File.Close(); err == nil {
		err = cerr
	}
	return err
}
