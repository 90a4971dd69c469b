package torchx

// #include <malloc.h>
import "C"

import (
	"os"
	"strings"
)

// mmapThreshold is the allocation size from which glibc serves libtorch's
// buffers with their own mmap (returned to the OS when freed); smaller ones
// come from the heap, without a page fault per use. What matters is that
// it is fixed (see init): 1 MB and 64 MB both stop the growth, and 64 MB
// keeps [B,L,V] temporaries on the heap, without the page faults that
// made a 1 MB threshold markedly slower (not yet measured side by side).
const mmapThreshold = 64 << 20

// trimThreshold is how much free memory glibc keeps at the top of a heap
// instead of returning it to the OS. Fixing the mmap threshold (below)
// also fixes this one, at glibc's default of 128 kB: then every step's
// freed temporaries went back to the OS and came back as fresh pages the
// next step — 5,500 page faults a step on the tiny preset at B = 16,
// L = 64, 3.5× as many as PyTorch's process, whose thresholds adapt
// (`perf stat -e page-faults`, 34 steps: 263k against 74k). Keeping up
// to 64 MB free cut that to 49k and the step by 8% (100–104 ms to
// 89–96 ms, 2 vCPU, three runs each), and the built-in default's 100
// steps from 2.70M faults to 0.13M. 256 MB did as well for the faults but
// let the heap creep: the 2,000-step soak (TestSoakRSS) went from 223 to
// 245–267 MiB, where with 64 MB it stays within 2%.
const trimThreshold = 64 << 20

// init fixes glibc's mmap and trim thresholds for the whole process. By
// default the mmap threshold adapts: after the first large buffer is
// freed it rises to that size (up to 32 MB), and later buffers of that
// size come from the heap, where a sampler that allocates and frees tens
// of [B,L,V] float64 tensors per step fragments it and the process grows
// without bound: 20 MB per step and 12 GB per run at V = 2050, T = 256
// (an embedding-distance D3PM chain and the SEDD analytic sampler; two
// such runs were killed by the OOM killer). No tensor handle leaks: with
// any fixed threshold the growth is 0. Setting glibc.malloc.mmap_threshold
// or glibc.malloc.trim_threshold in GLIBC_TUNABLES overrides the one set.
func init() {
	tunables := os.Getenv("GLIBC_TUNABLES")
	if !strings.Contains(tunables, "mmap_threshold") {
		C.mallopt(C.M_MMAP_THRESHOLD, mmapThreshold)
	}
	if !strings.Contains(tunables, "trim_threshold") {
		C.mallopt(C.M_TRIM_THRESHOLD, trimThreshold)
	}
}

// TrimHeap returns the heap's free memory to the OS (glibc's
// malloc_trim(0)), so that the resident set is the live tensors: the bench
// calls it before it measures a run's peak memory.
func TrimHeap() { C.malloc_trim(0) }
