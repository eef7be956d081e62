//go:build fmslice_nos3

package main

// A local-only fmslice (make build: -tags fmslice_nos3) does not link the
// S3 client, whose package initialisers cost every run about 1.5 ms and
// 160 page faults before main (see store_s3.go). For an s3:// store it
// replaces itself (execve: same arguments, environment, descriptors and
// so exit status) with fmslice-s3 from its own directory, the same command
// built with the client, before it has read or written anything.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// s3Binary is the full build, installed beside this one.
const s3Binary = "fmslice-s3"

// s3Elsewhere runs fmslice-s3 instead when the command line or the store
// variables name an s3:// store. Anything else that holds "s3://" (an
// output file so named) is harmless: fmslice-s3 does all fmslice does.
// It returns only when nothing names one; a store named only in --config
// is caught by openRemote.
func s3Elsewhere(args []string) {
	for _, v := range append(args, os.Getenv("FMCAP_SLICE_STORE"), os.Getenv("FMCAP_WRITER_STORE")) {
		if strings.Contains(v, "s3://") {
			err := execS3()
			fmt.Fprintln(os.Stderr, "fmslice:", err)
			os.Exit(1)
		}
	}
}

// openRemote execs fmslice-s3 for an s3:// store (an error if that
// fails); nil, nil for a local directory.
func openRemote(_ *cli.Context, loc string) (*remoteStore, error) {
	if !strings.HasPrefix(loc, "s3://") {
		return nil, nil
	}
	return nil, execS3()
}

// execS3 replaces the process with fmslice-s3; it returns only on failure.
func execS3() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("s3:// stores are read by %s, beside fmslice: %w", s3Binary, err)
	}
	path := filepath.Join(filepath.Dir(exe), s3Binary)
	err = syscall.Exec(path, append([]string{os.Args[0]}, os.Args[1:]...), os.Environ())
	return fmt.Errorf("s3:// stores are read by %s, beside fmslice (make build and make install put it there): %w", path, err)
}
