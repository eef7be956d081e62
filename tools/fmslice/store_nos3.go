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
	"os/exec"
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
// fmslice-s3 is looked for beside the executable (symlinks resolved),
// beside the name it was run by, then on PATH.
func execS3() error {
	if os.Getenv(handoverVar) != "" {
		exe, _ := os.Executable()
		return fmt.Errorf("%s (%s) is a build without the S3 client: build it with make build (go build ./tools/fmslice makes one with it)", s3Binary, exe)
	}
	var tried []string
	var cands []string
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), s3Binary))
	}
	if strings.Contains(os.Args[0], "/") {
		cands = append(cands, filepath.Join(filepath.Dir(os.Args[0]), s3Binary))
	}
	if p, err := exec.LookPath(s3Binary); err == nil {
		cands = append(cands, p)
	}
	env := append(os.Environ(), handoverVar+"=1")
	for _, path := range cands {
		err := syscall.Exec(path, append([]string{os.Args[0]}, os.Args[1:]...), env)
		tried = append(tried, fmt.Sprintf("%s: %v", path, err))
	}
	if len(tried) == 0 {
		tried = append(tried, "not beside fmslice nor on PATH")
	}
	return fmt.Errorf("s3:// stores are read by %s, beside fmslice (make build and make install put it there): %s", s3Binary, strings.Join(tried, "; "))
}
