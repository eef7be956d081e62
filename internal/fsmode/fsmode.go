// Package fsmode gives what fmcap stores on disk (chunks, frame tables,
// index segments, logs, their directories) the same permissions however the
// process was started: directories 0750 and files 0640, owner and its
// group (the fmcap group, under systemd) and nobody else. Captures hold
// other people's traffic; a writer or indexer run by hand with the usual
// umask 022 used to leave every chunk readable by every local user.
//
// Two layers, so that no create site can be missed: SetUmask makes the
// process umask 027 (every 0644/0755 anywhere becomes 0640/0750, 0666/0777
// too), and the create sites use MkdirAll and OpenFile here, which give the
// exact modes whatever the umask.
package fsmode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	Dir  fs.FileMode = 0o750 // store and index directories
	File fs.FileMode = 0o640 // chunks, frame tables, segments, logs

	umask = 0o027 // what Dir and File are to 0777 and 0666
)

// SetUmask sets the process umask to 027 (not OR-ed with the old one: a
// stricter umask would make the group, fmcap's readers, lose access) and
// returns the old one. Call it first in main (or run) of a process that
// writes the store, before any goroutine creates files.
func SetUmask() (old int) { return unix.Umask(umask) }

// MkdirAll is os.MkdirAll with Dir: the directories it creates get exactly
// Dir; existing ones are left as they are (an operator's choice).
func MkdirAll(path string) error {
	var missing []string
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	if err := os.MkdirAll(path, Dir); err != nil {
		return err
	}
	for _, p := range missing {
		if err := os.Chmod(p, Dir); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}

// OpenFile is os.OpenFile with File; with O_CREATE the file gets exactly
// File whatever the umask (also when it existed with a wider mode and this
// process owns it).
func OpenFile(name string, flag int) (*os.File, error) {
	f, err := os.OpenFile(name, flag, File)
	if err != nil || flag&os.O_CREATE == 0 {
		return f, err
	}
	if err := f.Chmod(File); err != nil && !errors.Is(err, fs.ErrPermission) {
		f.Close()
		return nil, fmt.Errorf("chmod %s: %w", name, err)
	}
	return f, nil
}

// Create is os.Create with File.
func Create(name string) (*os.File, error) {
	return OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
}
