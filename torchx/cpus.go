package torchx

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// UsableCPUs is how many CPUs this process may run on: the CPUs of its
// affinity mask (sched_getaffinity: taskset, cpusets, Slurm's binding),
// capped by a cgroup v2 CPU quota (docker --cpus, Kubernetes limits),
// rounded up. At least 1. It is what `threads: auto` uses, so that a run
// never starts more compute threads than it has cores to put them on.
func UsableCPUs() int {
	n := 0
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		n = set.Count()
	}
	if n < 1 {
		n = 1
	}
	if q, ok := cgroupQuota("/sys/fs/cgroup/cpu.max"); ok && q < n {
		n = q
	}
	return n
}

// cgroupQuota reads a cgroup v2 cpu.max file ("max 100000" or "150000
// 100000") as a whole number of CPUs, rounded up; false when unlimited or
// unreadable.
func cgroupQuota(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return parseCPUMax(string(b))
}

func parseCPUMax(s string) (int, bool) {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] == "max" {
		return 0, false
	}
	quota, err1 := strconv.ParseInt(f[0], 10, 64)
	period, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return 0, false
	}
	return int(max(1, (quota+period-1)/period)), true
}
