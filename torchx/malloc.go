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

// init fixes glibc's mmap threshold for the whole process. By default the
// threshold adapts: after the first large buffer is freed it rises to that
// size (up to 32 MB), and later buffers of that size come from the heap,
// where a sampler that allocates and frees tens of [B,L,V] float64 tensors
// per step fragments it and the process grows without bound: 20 MB per step
// and 12 GB per run at V = 2050, T = 256 (an embedding-distance D3PM chain
// and the SEDD analytic sampler; two such runs were killed by the OOM
// killer). No tensor handle leaks: with any fixed threshold the growth is 0
// (mallopt also stops the adaptive trim threshold).
// Setting glibc.malloc.mmap_threshold in GLIBC_TUNABLES overrides this.
func init() {
	if strings.Contains(os.Getenv("GLIBC_TUNABLES"), "mmap_threshold") {
		return
	}
	C.mallopt(C.M_MMAP_THRESHOLD, mmapThreshold)
}

// TrimHeap returns the heap's free memory to the OS (glibc's
// malloc_trim(0)), so that the resident set is the live tensors: the bench
// calls it before it measures a run's peak memory.
func TrimHeap() { C.malloc_trim(0) }
