// Package torchx holds the few conventions every package that touches
// libtorch through gotch must share: which device to use, how many threads,
// where torch work may run (one locked OS thread), and how intermediates
// are freed deterministically.
package torchx

// #cgo LDFLAGS: -ldl
// #include <stdint.h>
// #include <dlfcn.h>
// extern void at_set_num_threads(int n_threads);
// extern void at_manual_seed(int64_t seed);
// extern int at_get_num_threads();
//
// // OpenBLAS keeps a thread pool of its own beside libtorch's: libtorch's
// // thread count does not reach it, so it is set by name when the BLAS
// // that libtorch loaded is OpenBLAS (looked up, not linked: an MKL or
// // other BLAS has no such symbol, and then there is nothing to set).
// static int blas_set_threads(int n) {
//	void (*f)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
//	if (!f) return 0;
//	f(n);
//	return 1;
// }
// static int blas_threads(void) {
//	int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
//	return f ? f() : -1;
// }
import "C"

import (
	"fmt"
	"os"
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

// SetThreads sets libtorch's intra-op thread count and, when libtorch's
// BLAS is OpenBLAS, OpenBLAS's own pool to the same n (unless the
// environment sets OPENBLAS_NUM_THREADS, which then wins); n <= 0 keeps
// their defaults. Without the second, OpenBLAS (pthreads build) starts one
// thread per CPU whatever libtorch's count, and its idle threads spin in
// sched_yield: `threads: 1` then used two cores, and two runs side by side
// fought over them. The BLAS thread count can change the last bits of a
// matrix product, so it is part of what makes a run reproducible.
func SetThreads(n int) {
	if n > 0 {
		C.at_set_num_threads(C.int(n))
		if os.Getenv("OPENBLAS_NUM_THREADS") == "" {
			C.blas_set_threads(C.int(n))
		}
	}
}

// WithBLASThreads runs fn with OpenBLAS's pool at n threads and restores
// it afterwards (nothing to set when libtorch's BLAS is not OpenBLAS). The
// count is process-wide: it is for a caller that, during fn, is the only
// one calling into the BLAS from threads it runs, such as lanes that each
// want their matrix products on their own core.
func WithBLASThreads(n int, fn func()) {
	prev := BLASThreads()
	if prev < 1 || prev == n {
		fn()
		return
	}
	C.blas_set_threads(C.int(n))
	defer C.blas_set_threads(C.int(prev))
	fn()
}

// BLASThreads reports OpenBLAS's thread count, or -1 when libtorch's BLAS
// is not OpenBLAS.
func BLASThreads() int { return int(C.blas_threads()) }

// Threads reports libtorch's intra-op thread count.
func Threads() int { return int(C.at_get_num_threads()) }

// MixSeed mixes a seed and an index (a training step, an evaluation
// batch) into the seed of that index (splitmix64), so neighbouring indices
// and seeds draw unrelated noise.
func MixSeed(seed uint64, i int) int64 {
	z := seed + uint64(i)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int64(z >> 1)
}

// Seed seeds libtorch's global generators (CPU and CUDA).
func Seed(seed int64) { C.at_manual_seed(C.int64_t(seed)) }
