package losses

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// TestChunkedCEEqualsFullCE: the chunked cross-entropy's costs, its summed
// loss and the gradients of h, W and b equal those of the full logits
// through autograd, in float64 to 1e-12, for chunks that divide the rows,
// do not, and exceed them.
func TestChunkedCEEqualsFullCE(t *testing.T) {
	torchx.Lock()
	const M, d, V = 23, 6, 11
	leaf := func(shape []int64, seed int64) *ts.Tensor {
		torchx.Seed(seed)
		return ts.MustRandn(shape, gotch.Double, gotch.CPU).MustSetRequiresGrad(true, true)
	}
	torchx.Seed(3)
	target := ts.MustRandint(V, []int64{M}, gotch.Int64, gotch.CPU)
	weight := ts.MustRand([]int64{M}, gotch.Double, gotch.CPU)
	scale := ts.MustRand([]int64{M}, gotch.Double, gotch.CPU).MustGt(ts.FloatScalar(0.3), true).MustTotype(gotch.Double, true) // padding: 0/1
	grads := func(ps ...*ts.Tensor) [][]float64 {
		var out [][]float64
		for _, p := range ps {
			g := p.MustGrad(false)
			out = append(out, g.Float64Values())
			g.MustDrop()
		}
		return out
	}

	// The reference: all the logits, autograd.
	h, w, b := leaf([]int64{M, d}, 1), leaf([]int64{V, d}, 2), leaf([]int64{V}, 4)
	z := ts.MustLinear(h, w, b)
	lse := z.MustLogsumexp([]int64{-1}, false, false)
	picked := z.MustGather(-1, target.MustUnsqueeze(-1, false), false, false).MustSqueezeDim(-1, true)
	wantCost := lse.MustSub(picked, false).MustMul(weight, true)
	wantLoss := wantCost.MustMul(scale, false).MustSum(gotch.Double, true)
	wantLoss.MustBackward()
	want := grads(h, w, b)

	for _, chunk := range []int{1, 5, 23, 64} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			torchx.Lock()
			h, w, b := leaf([]int64{M, d}, 1), leaf([]int64{V, d}, 2), leaf([]int64{V}, 4)
			loss, cost, err := chunkedCE(h, w, b, target, weight, scale, chunk)
			if err != nil {
				t.Fatal(err)
			}
			if cost.MustRequiresGrad() {
				t.Error("the costs carry a gradient; only the loss should")
			}
			if d := maxAbsDiff(cost.Float64Values(), wantCost.Float64Values()); d > 1e-12 {
				t.Errorf("costs differ from the full cross-entropy's by %g", d)
			}
			if got, w := scalar(loss), scalar(wantLoss); math.Abs(got-w) > 1e-12 {
				t.Errorf("loss %.15g, full cross-entropy %.15g", got, w)
			}
			// Scaled upstream (Loss divides by the token count): gradients scale.
			loss.MustMulScalar(ts.FloatScalar(0.5), false).MustBackward()
			for i, g := range grads(h, w, b) {
				for j := range g {
					if math.Abs(g[j]-0.5*want[i][j]) > 1e-12 {
						t.Fatalf("gradient of %s entry %d: %.15g chunked, %.15g full", []string{"h", "W", "b"}[i], j, g[j], 0.5*want[i][j])
					}
				}
			}
		})
	}
}

// TestChunkedCESameLossAndGradients: objective.ce_chunk gives MDLM's,
// BD3-LM's and AR's training loss and every parameter's gradient of the
// unchunked head on a real transformer, with padding weights, to 1e-6, and
// the same evaluation bound per sequence.
func TestChunkedCESameLossAndGradients(t *testing.T) {
	torchx.Lock()
	const V, L = 9, 8
	proc := forward.NewAbsorbing(V, forward.LogLinear{Eps: 1e-3})
	for _, c := range []struct {
		name  string
		proc  forward.Process
		block int
	}{{"mdlm", proc, 0}, {"bd3lm", proc, 4}, {"ar", nil, 0}} {
		t.Run(c.name, func(t *testing.T) {
			torchx.Lock()
			objective := func(chunk int) Objective {
				return build(t, c.name, c.proc, V, func(cfg *Config) { cfg.BlockSize, cfg.CEChunk = max(c.block, 1), chunk }).(Objective)
			}
			full, chunked := objective(0), objective(5)
			spec := full.Spec()
			x0 := randomTokens(t, 3, L, V, 17)
			defer x0.MustDrop()
			pad := ts.MustOnes([]int64{3, L}, gotch.Float, gotch.CPU)
			defer pad.MustDrop()
			torchx.NoGrad(func() { // the last three tokens of sequence 2 are padding
				tail := pad.MustNarrow(0, 2, 1, false).MustNarrow(1, L-3, 3, true)
				torchx.Inplace(tail, tail.MustZero_)
				tail.MustDrop()
			})
			cfg := models.DefaultConfig()
			cfg.Dropout, cfg.MaxLen = 0, 64
			torchx.Seed(5)
			vs := nn.NewVarStore(gotch.CPU)
			m, err := models.New(vs.Root(), cfg, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, BlockSize: spec.BlockSize, Causal: spec.Causal})
			if err != nil {
				t.Fatal(err)
			}
			params := vs.TrainableVariables()
			lf, sf, gf := lossAndGrads(t, full, m, x0, pad, params)
			lc, sc, gc := lossAndGrads(t, chunked, m, x0, pad, params)
			if math.Abs(lf-lc) > 1e-6 || math.Abs(sf.NELBO-sc.NELBO) > 1e-6 || sf.Tokens != sc.Tokens {
				t.Errorf("loss %.9g, NELBO %.9g over %v tokens chunked; %.9g, %.9g over %v with the full head", lc, sc.NELBO, sc.Tokens, lf, sf.NELBO, sf.Tokens)
			}
			worst, total := 0.0, 0.0
			for i := range gf {
				worst = math.Max(worst, maxAbsDiff(gf[i], gc[i]))
				for _, g := range gf[i] {
					total += math.Abs(g)
				}
			}
			if worst > 1e-6 || total == 0 {
				t.Errorf("gradients differ by up to %g (Σ|g| = %g)", worst, total)
			}
			// Evaluation: the same bound per sequence.
			u := []float64{0.2, 0.55, 0.9}
			var bounds [2][]float64
			for i, obj := range []Objective{full, chunked} {
				torchx.Seed(31)
				if bounds[i], err = obj.NELBO(m, x0, pad, u); err != nil {
					t.Fatal(err)
				}
			}
			if d := maxAbsDiff(bounds[0], bounds[1]); d > 1e-4 || bounds[0][0] == 0 {
				t.Errorf("NELBO per sequence %v with the full head, %v chunked", bounds[0], bounds[1])
			}
		})
	}
}

// lossAndGrads is obj's training loss on x0 (loss weights pad, nil: ones)
// with torch's generator at seed 23, its stats, and the gradients of
// params it leaves (zeroed first).
func lossAndGrads(t *testing.T, obj Objective, net Net, x0, pad *ts.Tensor, params []*ts.Tensor) (float64, Stats, [][]float64) {
	t.Helper()
	for _, p := range params {
		g := p.MustGrad(false)
		if g.MustDefined() {
			torchx.NoGrad(func() { torchx.Inplace(g, g.MustZero_) })
		}
		g.MustDrop()
	}
	torchx.Seed(23)
	loss, st, err := obj.Loss(net, x0, pad)
	if err != nil {
		t.Fatal(err)
	}
	loss.MustBackward()
	var grads [][]float64
	for _, p := range params {
		g := p.MustGrad(false)
		grads = append(grads, g.Float64Values())
		g.MustDrop()
	}
	l := scalar(loss)
	loss.MustDrop()
	return l, st, grads
}

func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}
