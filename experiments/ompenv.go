package main

import (
	"fmt"
	"os"
	"syscall"
)

// ompWaitPolicy is the OpenMP wait policy the command runs under unless
// the environment names one. libgomp (libtorch's thread pool) reads
// OMP_WAIT_POLICY once, when the library loads — before any Go code runs
// — so the command sets it by executing itself again with it. Passive:
// idle pool threads sleep instead of spinning for ~300k iterations, which
// on a machine with as many busy threads as cores (a sweep, a build
// beside a run) made steps 3–10× slower (README, Troubleshooting); with
// one thread per core it costs nothing measurable (README, Threads).
const ompWaitPolicy = "passive"

// ensureOMPPolicy re-executes the process with OMP_WAIT_POLICY set, once;
// it returns only when the policy is already set (by the user or by the
// re-execution) or when re-executing is impossible, which is reported
// and not fatal: the run is still correct, only possibly slower.
func ensureOMPPolicy() {
	if _, set := os.LookupEnv("OMP_WAIT_POLICY"); set {
		return
	}
	self, err := os.Executable()
	if err == nil {
		env := append(os.Environ(), "OMP_WAIT_POLICY="+ompWaitPolicy)
		err = syscall.Exec(self, os.Args, env) // replaces the process: same pid
	}
	fmt.Fprintf(os.Stderr, "experiments: cannot set OMP_WAIT_POLICY=%s by re-executing (%v); set it in the environment\n", ompWaitPolicy, err)
}
