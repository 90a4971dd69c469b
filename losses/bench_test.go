package losses

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// BenchmarkLoss times one training step's loss and backward pass for every
// pair at B = 8, L = 128, V = 8192 with a small random float32 network
// (embedding + σ vector + linear read-out, width 64), so that the numbers
// are the objectives' own cost. The embedding process's one-time
// eigendecomposition (minutes at V = 8192) is cached under the system
// temporary folder and is not timed.
func BenchmarkLoss(b *testing.B) {
	torchx.Lock()
	const v, batch, length, width = 8192, 8, 128, 64
	ll := forward.LogLinear{Eps: 1e-3}
	torchx.Seed(1)
	table := ts.MustRandn([]int64{v, width}, gotch.Float, gotch.CPU)
	emb, err := forward.NewEmbedding(table, 10, ll, filepath.Join(os.TempDir(), "difflm-bench-eigen"), gotch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	defer emb.Drop()
	cases := []struct {
		name string
		proc forward.Process
		cfg  Config
	}{
		{"mdlm/absorbing", forward.NewAbsorbing(v, ll), Config{Name: "mdlm"}},
		{"mdlm-T1000/absorbing", forward.NewAbsorbing(v, ll), Config{Name: "mdlm", Steps: 1000}},
		{"d3pm/absorbing", forward.NewAbsorbing(v, ll), Config{Name: "d3pm", Steps: 1000}},
		{"d3pm/uniform", forward.NewUniform(v, ll), Config{Name: "d3pm", Steps: 1000}},
		{"d3pm-mixture/uniform", forward.NewUniform(v, ll), Config{Name: "d3pm", Steps: 1000, D3PMForm: "mixture"}},
		{"d3pm/embedding", emb, Config{Name: "d3pm", Steps: 1000}},
		{"d3pm-mixture/embedding", emb, Config{Name: "d3pm", Steps: 1000, D3PMForm: "mixture"}},
		{"sedd/absorbing", forward.NewAbsorbing(v, ll), Config{Name: "sedd"}},
		{"sedd/uniform", forward.NewUniform(v, ll), Config{Name: "sedd"}},
		{"sedd/embedding", emb, Config{Name: "sedd"}},
		{"ar/none", nil, Config{Name: "ar"}},
	}
	x0 := ts.MustRandint(v, []int64{batch, length}, gotch.Int64, gotch.CPU)
	defer x0.MustDrop()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			torchx.Lock()
			cfg := DefaultConfig()
			cfg.Name, cfg.Steps = c.cfg.Name, c.cfg.Steps
			if c.cfg.D3PMForm != "" {
				cfg.D3PMForm = c.cfg.D3PMForm
			}
			obj, err := New(cfg, c.proc, v)
			if err != nil {
				b.Fatal(err)
			}
			net := newLinearNet(obj.Spec(), width, 0.02, gotch.Float)
			b.ResetTimer()
			for range b.N {
				loss, _, err := obj.Loss(net, x0, nil)
				if err != nil {
					b.Fatal(err)
				}
				loss.MustBackward()
				loss.MustDrop()
				for _, p := range net.params() {
					if g := p.MustGrad(false); g.MustDefined() {
						g.MustZero_()
						g.MustDrop()
					}
				}
			}
			b.ReportMetric(float64(b.N*batch*length)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
