package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// launchLocal is -nproc N: it starts N copies of this command on this host
// as the ranks of one data-parallel job, like `torchrun --standalone
// --nproc-per-node N`: each gets torchrun's variables (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; a free loopback
// port) and the same arguments. The first rank to fail — an error, a
// signal, SIGKILL — is named and the command fails. The others are given
// grace to notice by themselves (their next collective fails, and they
// name the rank whose heartbeat stopped), then SIGTERM, then after grace
// again SIGKILL. A job restarted resumes from rank 0's last checkpoint.
func launchLocal(ctx context.Context, n int, grace time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("-nproc: find a free port: %w", err)
	}
	slog.Info("-nproc: starting ranks", "n", n, "store", fmt.Sprintf("127.0.0.1:%d", port))
	cmds := make([]*exec.Cmd, n)
	for r := range cmds {
		cmd := exec.Command(self, os.Args[1:]...)
		cmd.Env = append(os.Environ(), "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			"LOCAL_RANK="+strconv.Itoa(r), "LOCAL_WORLD_SIZE="+strconv.Itoa(n),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			stopAll(cmds[:r], 0)
			return fmt.Errorf("-nproc: start rank %d: %w", r, err)
		}
		cmds[r] = cmd
	}
	type exit struct {
		rank int
		err  error
	}
	exits := make(chan exit, n)
	for r, cmd := range cmds {
		go func() { exits <- exit{r, cmd.Wait()} }()
	}
	var first error
	for left := n; left > 0; left-- {
		var e exit
		select {
		case e = <-exits:
		case <-ctx.Done():
			signalAll(cmds, syscall.SIGINT) // each rank checkpoints and stops
			ctx = context.Background()
			left++
			continue
		}
		if e.err != nil && first == nil {
			first = fmt.Errorf("-nproc: rank %d of %d failed (%v); stopping the others", e.rank, n, e.err)
			slog.Error(first.Error())
			go stopAll(cmds, grace)
		}
	}
	return first
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func signalAll(cmds []*exec.Cmd, sig os.Signal) {
	for _, c := range cmds {
		if c != nil && c.Process != nil {
			c.Process.Signal(sig)
		}
	}
}

// stopAll waits grace for the ranks to stop by themselves, asks them to
// (SIGTERM), and kills those still running after grace more.
func stopAll(cmds []*exec.Cmd, grace time.Duration) {
	time.Sleep(grace)
	signalAll(cmds, syscall.SIGTERM)
	time.Sleep(grace)
	for _, c := range cmds {
		if c != nil && c.Process != nil {
			if err := c.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				slog.Warn("-nproc: kill a rank", "pid", c.Process.Pid, "err", err)
			}
		}
	}
}
