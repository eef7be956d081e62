package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Rename publishes a file its writer has already written and fsynced under
// a hidden name (a chunk is streamed for minutes, so it cannot go through
// Write): it renames oldpath to newpath and fsyncs newpath's directory, so
// that the rename survives a crash. A failed directory fsync is returned:
// the file is in place, but may not be after a crash.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(newpath))
}

// SyncDir fsyncs directory dir, so that the renames and removals made in it
// survive a crash.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := syncDir(fd); err != nil {
		return fmt.Errorf("fsync directory %s (the change may not survive a crash): %w", dir, err)
	}
	return nil
}
