package forward

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// BenchmarkEmbedding measures the embedding process at V = 8192 (random
// 64-dimensional table, k = 10) on the CPU: "build" is the one-time cost
// without a cache (kNN graph, float64 eigendecomposition, prior-KL table;
// run it with -benchtime 1x), "cached" a build from the cache, and the
// rest one batch of B = 8, L = 128 positions.
func BenchmarkEmbedding(b *testing.B) {
	torchx.Lock()
	const v, dim, k = 8192, 64, 10
	sched := LogLinear{Eps: 1e-3}
	torchx.Seed(1)
	table := ts.MustRandn([]int64{v, dim}, gotch.Float, gotch.CPU)
	defer table.MustDrop()
	b.Run("build", func(b *testing.B) {
		torchx.Lock()
		for range b.N {
			e, err := NewEmbedding(table, k, sched, b.TempDir(), gotch.CPU)
			if err != nil {
				b.Fatal(err)
			}
			e.Drop()
		}
	})
	dir := filepath.Join(os.TempDir(), "difflm-bench-eigen")
	e, err := NewEmbedding(table, k, sched, dir, gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Drop()
	b.Run("cached", func(b *testing.B) {
		torchx.Lock()
		for range b.N {
			c, err := NewEmbedding(table, k, sched, dir, gotch.CPU)
			if err != nil {
				b.Fatal(err)
			}
			c.Drop()
		}
	})
	x0 := ts.MustRandint(v, []int64{8, 128}, gotch.Int64, gotch.CPU)
	defer x0.MustDrop()
	sigma := []float64{0.1, 0.5, 1, 2, 3, 4, 5, 6.9}
	probs := ts.MustRand([]int64{8, 128, v}, gotch.Float, gotch.CPU)
	defer probs.MustDrop()
	ops := []struct {
		name string
		op   func() []*ts.Tensor
	}{
		{"Sample", func() []*ts.Tensor { return []*ts.Tensor{e.Sample(x0, sigma)} }},
		{"Row", func() []*ts.Tensor { return []*ts.Tensor{e.Row(x0, sigma, gotch.Float)} }},
		{"Propagate", func() []*ts.Tensor { return []*ts.Tensor{e.Propagate(probs, sigma)} }},
		{"JumpsInto+Entries", func() []*ts.Tensor {
			from, rate := e.JumpsInto(x0, gotch.Float)
			return []*ts.Tensor{from, rate, e.Entries(x0, from, sigma, gotch.Double)}
		}},
	}
	for _, o := range ops {
		b.Run(o.name, func(b *testing.B) {
			torchx.Lock()
			for range b.N {
				for _, t := range o.op() {
					t.MustDrop()
				}
			}
		})
	}
}
