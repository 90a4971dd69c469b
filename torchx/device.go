// Package torchx holds the few conventions every package that touches
// libtorch through gotch must share: which device to use, how many threads,
// where torch work may run (one locked OS thread), and how intermediates
// are freed deterministically.
package torchx

// #include <stdint.h>
// extern void at_set_num_threads(int n_threads);
// extern void at_manual_seed(int64_t seed);
// extern int at_get_num_threads();
import "C"

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
)

// ParseDevice turns "auto", "cpu", "cuda" or "cuda:N" into a gotch device.
// "auto" picks CUDA when libtorch sees a GPU. Asking for CUDA where there
// is none is an error, never a silent CPU run.
func ParseDevice(s string) (gotch.Device, error) {
	cuda := gotch.CUDA
	switch {
	case s == "auto":
		if cuda.IsAvailable() {
			return gotch.CudaBuilder(0), nil
		}
		return gotch.CPU, nil
	case s == "cpu":
		return gotch.CPU, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if rest, ok := strings.CutPrefix(s, "cuda:"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				return gotch.CPU, fmt.Errorf("device %q: the index after cuda: must be a non-negative integer", s)
			}
			idx = n
		}
		if !cuda.IsAvailable() {
			return gotch.CPU, fmt.Errorf("device %q: libtorch sees no CUDA device (is this a CPU build of libtorch? see README, 'GPU')", s)
		}
		if n := cuda.DeviceCount(); int64(idx) >= n {
			return gotch.CPU, fmt.Errorf("device %q: only %d CUDA device(s) visible", s, n)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: want auto, cpu, cuda or cuda:N", s)
}

// DeviceName is the inverse of ParseDevice, for logs and the results table.
func DeviceName(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}

// SetThreads sets libtorch's intra-op thread count; n <= 0 keeps its default.
func SetThreads(n int) {
	if n > 0 {
		C.at_set_num_threads(C.int(n))
	}
}

// Threads reports libtorch's intra-op thread count.
func Threads() int { return int(C.at_get_num_threads()) }

// Seed seeds libtorch's global generators (CPU and CUDA).
func Seed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }
