package forward

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// rssMB is this process's resident set in MB.
func rssMB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	pages, _ := strconv.Atoi(strings.Fields(string(b))[1])
	return float64(pages) * float64(os.Getpagesize()) / 1e6
}

// A sampler step's worth of embedding-process work, repeated, must not
// grow the process: with glibc's adaptive mmap threshold each Row call of
// this size left ~17 MB behind in a fragmented heap (the runs of the CPU
// study grew to 12 GB); torchx fixes the threshold.
func TestEmbeddingRowDoesNotGrowRSS(t *testing.T) {
	torchx.Lock()
	const v, dim = 2050, 32
	torchx.Seed(1)
	table := ts.MustRandn([]int64{v, dim}, gotch.Float, gotch.CPU)
	defer table.MustDrop()
	e, err := NewEmbedding(table, 10, LogLinear{Eps: 1e-3}, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Drop()
	x := ts.MustRandint(v, []int64{8, 128}, gotch.Int64, gotch.CPU)
	defer x.MustDrop()
	sigma := []float64{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}
	torchx.NoGrad(func() {
		e.Row(x, sigma, gotch.Double).MustDrop()
		before := rssMB(t)
		for range 20 {
			e.Row(x, sigma, gotch.Double).MustDrop()
		}
		// One [8,128,2050] float64 result is 17 MB: 20 calls leaking one
		// each would add 336 MB (measured before the fix).
		if grew := rssMB(t) - before; grew > 60 {
			t.Errorf("RSS grew %.0f MB over 20 Row calls", grew)
		}
	})
}
