package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// perTensorAdamW is the optimizer as it was before the flat buffer: the
// same update, one parameter tensor at a time, with its own moments. It is
// the reference the flat optimizer must equal.
type perTensorAdamW struct {
	adamW
	params []*ts.Tensor
}

// withOps makes o take its tensor-op path (the one CUDA takes) instead of
// the fused CPU kernel.
func withOps(o *adamW) *adamW {
	o.fused = false
	o.tmp = o.f.param.MustZerosLike(false)
	return o
}

func newPerTensorAdamW(params []*ts.Tensor, beta1, beta2, eps, wd float64) *perTensorAdamW {
	o := &perTensorAdamW{adamW: adamW{beta1: beta1, beta2: beta2, eps: eps, weightDecay: wd}, params: params}
	for _, p := range params {
		o.m = append(o.m, p.MustZerosLike(false))
		o.v = append(o.v, p.MustZerosLike(false))
	}
	return o
}

func (o *perTensorAdamW) step(lr float64) {
	o.t++
	bc1 := 1 - math.Pow(o.beta1, float64(o.t))
	bc2 := 1 - math.Pow(o.beta2, float64(o.t))
	torchx.NoGrad(func() {
		for i, p := range o.params {
			g := p.MustGrad(false)
			if g.MustDefined() {
				tmp := g.MustZerosLike(false)
				o.update(p, g, o.m[i], o.v[i], tmp, lr, bc1, bc2)
				tmp.MustDrop()
			}
			g.MustDrop()
		}
	})
}

func (o *perTensorAdamW) zeroGrad() {
	torchx.NoGrad(func() {
		for _, p := range o.params {
			g := p.MustGrad(false)
			if g.MustDefined() {
				torchx.Inplace(g, g.MustZero_)
			}
			g.MustDrop()
		}
	})
}

// adamWShapes are a transformer's kinds of parameter tensor: matrices,
// vectors, a scalar-like one, sizes that do not divide a SIMD width.
var adamWShapes = [][]int64{{7, 5}, {5}, {1}, {3, 4, 2}, {33}}

// newAdamWParams makes the parameters of adamWShapes with fixed values.
func newAdamWParams(vs *nn.VarStore) []*ts.Tensor {
	var ps []*ts.Tensor
	for i, shape := range adamWShapes {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		vals := make([]float32, n)
		for k := range vals {
			vals[k] = float32(math.Sin(float64(i*100+k)) * 0.7)
		}
		p := vs.Root().MustNewVar(fmt.Sprintf("p%d", i), shape, nn.NewConstInit(0))
		torchx.NoGrad(func() {
			src := ts.MustOfSlice(vals).MustView(shape, true)
			p.Copy_(src)
			src.MustDrop()
		})
		ps = append(ps, p)
	}
	return ps
}

// adamWLoss is Σ_i Σ c_i·p_i² + sin(p_i)·p_i: different gradients per
// element and step; backward accumulates them into the parameters' grads.
func adamWLoss(ps []*ts.Tensor) {
	s := torchx.NewScope()
	defer s.Close()
	var total *ts.Tensor
	for i, p := range ps {
		sq := s.T(s.T(p.MustMul(p, false)).MustMulScalar(ts.FloatScalar(0.3+0.2*float64(i)), false))
		term := s.T(s.T(sq.MustAdd(s.T(s.T(p.MustSin(false)).MustMul(p, false)), false)).MustSum(gotch.Float, false))
		if total == nil {
			total = term
		} else {
			total = s.T(total.MustAdd(term, false))
		}
	}
	total.MustBackward()
}

// TestFlatAdamWEqualsPerTensor trains the same parameters with the flat
// optimizer and with the per-tensor one for five steps (weight decay, a
// different lr each step, two backward passes accumulated per step) and
// requires the same parameters, moments and gradients to 1e-7.
//
// Both take the tensor ops: the layout is what this compares. The fused
// kernel rounds a few operations differently (ATen's lerp uses a fused
// multiply-add), and over several steps those ulps compound through the
// gradients; TestFusedStepEqualsOps compares it with the ops step by step.
func TestFlatAdamWEqualsPerTensor(t *testing.T) {
	torchx.Lock()
	const b1, b2, eps, wd = 0.9, 0.99, 1e-8, 0.05
	ref := newAdamWParams(nn.NewVarStore(gotch.CPU))
	got := newAdamWParams(nn.NewVarStore(gotch.CPU))
	f, err := newFlat(got)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := maxDiff(values(got[i]), values(ref[i])); d != 0 {
			t.Fatalf("newFlat changed parameter %d by %g", i, d)
		}
	}
	po := newPerTensorAdamW(ref, b1, b2, eps, wd)
	fo := withOps(newAdamW(f, b1, b2, eps, wd))
	for step, lr := range []float64{0.1, 0.05, 0.02, 0.01, 0.03} {
		po.zeroGrad()
		f.zeroGrad()
		for range 2 {
			adamWLoss(ref)
			adamWLoss(got)
		}
		// The gradients are the flat buffer's: autograd accumulated there.
		var pg []float64
		for _, p := range ref {
			pg = append(pg, values(p.MustGrad(false))...)
		}
		if d := maxDiff(values(f.grad), pg); d > 1e-7 {
			t.Fatalf("step %d: the flat gradient buffer differs from the per-tensor gradients by %g", step+1, d)
		}
		po.step(lr)
		fo.step(lr, nil)
		for i := range got {
			for _, c := range []struct {
				what     string
				got, ref *ts.Tensor
			}{{"parameter", got[i], ref[i]}, {"m", fo.m[i], po.m[i]}, {"v", fo.v[i], po.v[i]}} {
				if d := maxDiff(values(c.got), values(c.ref)); d > 1e-7 {
					t.Errorf("step %d: %s %d: flat and per-tensor AdamW differ by %g", step+1, c.what, i, d)
				}
			}
		}
	}
}
