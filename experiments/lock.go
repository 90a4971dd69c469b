package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// runLock is a run folder's owner: an exclusive flock on <run>/LOCK, held
// for the life of the process, whose content names the holder ("pid
// host"). The kernel drops a flock when its process dies however it dies,
// so a LOCK left by a dead process is simply taken (with a warning naming
// it); a live holder makes a second process on the same run stop at once.
type runLock struct{ f *os.File }

// lockRun takes the lock of the run called name in dir.
func lockRun(dir, name string) (*runLock, error) {
	path := filepath.Join(dir, "LOCK")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("run %s: lock: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run %s is in use by %s (%s)", name, holder, path)
		}
		return nil, fmt.Errorf("run %s: lock %s: %w", name, path, err)
	}
	if prev := readHolder(f); prev != "" {
		slog.Warn("run: taking over the lock of a process that is gone", "run", name, "was", prev, "file", path)
	}
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), host)), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("run %s: lock %s: %w", name, path, err)
	}
	return &runLock{f: f}, nil
}

// readHolder renders the LOCK content as "pid N on host H", "" if empty.
func readHolder(f *os.File) string {
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	fields := strings.Fields(string(b[:n]))
	if len(fields) < 2 {
		return ""
	}
	if _, err := strconv.Atoi(fields[0]); err != nil {
		return ""
	}
	return fmt.Sprintf("pid %s on host %s", fields[0], fields[1])
}

// release empties the LOCK file (a clean exit leaves no holder behind) and
// drops the lock.
func (l *runLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}
