package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelperHoldLock is not a test: run as a child process by
// TestRunLockTwoProcesses, it takes the lock, says so, and waits.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv("DIFFLM_LOCK_DIR")
	if dir == "" {
		t.Skip("helper process for TestRunLockTwoProcesses")
	}
	l, err := lockRun(dir, "absorbing")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	defer l.release()
	fmt.Println("locked")
	time.Sleep(time.Minute)
}

// TestRunLockTwoProcesses: while another process holds a run, taking it
// fails at once with a message naming that process, its host and the lock
// file; once the holder is killed (no cleanup), the lock is taken over with
// a warning naming the dead holder.
func TestRunLockTwoProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "absorbing")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), "DIFFLM_LOCK_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "locked") {
		t.Fatalf("helper: %q", buf[:n])
	}
	host, _ := os.Hostname()
	_, err = lockRun(dir, "absorbing")
	want := fmt.Sprintf("run absorbing is in use by pid %d on host %s (%s)", cmd.Process.Pid, host, filepath.Join(dir, "LOCK"))
	if err == nil || err.Error() != want {
		t.Fatalf("second owner: %v\nwant: %s", err, want)
	}
	cmd.Process.Kill()
	cmd.Wait()

	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	l, err := lockRun(dir, "absorbing")
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	defer l.release()
	if !strings.Contains(logs.String(), fmt.Sprintf("was=\"pid %d on host %s\"", cmd.Process.Pid, host)) {
		t.Errorf("no warning naming the dead holder: %s", logs.String())
	}
	if content, _ := os.ReadFile(filepath.Join(dir, "LOCK")); string(content) != fmt.Sprintf("%d %s\n", os.Getpid(), host) {
		t.Errorf("LOCK holds %q", content)
	}
}
