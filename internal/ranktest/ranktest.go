// Package ranktest runs a test function of the calling test binary as the
// ranks of a data-parallel job on this host (Gloo over loopback), the way
// torchrun would start them: each rank a process with RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT set. It is for tests only.
package ranktest

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Run starts world copies of the test binary running only the test named
// helper, with env added to each, and waits for all of them. It returns
// each rank's combined output and exit error.
func Run(t *testing.T, world int, helper string, env ...string) ([]string, []error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmds := make([]*exec.Cmd, world)
	outs := make([]*strings.Builder, world)
	for r := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.v")
		cmd.Env = append(append(os.Environ(), env...), "MASTER_ADDR=127.0.0.1",
			"MASTER_PORT="+strconv.Itoa(port), "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(world))
		outs[r] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[r], outs[r]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = cmd
	}
	res := make([]string, world)
	errs := make([]error, world)
	for r, cmd := range cmds {
		errs[r] = cmd.Wait()
		res[r] = outs[r].String()
	}
	return res, errs
}

// Result is the text after "RESULT " on the first line of out that has it
// (what a helper prints for the parent to check), or "" when none does.
func Result(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(line, "RESULT "); ok {
			return s
		}
	}
	return ""
}
