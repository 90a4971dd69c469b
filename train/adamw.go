package train

import (
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// adamW is torch.optim.AdamW (decoupled weight decay, bias-corrected
// moments) written with in-place tensor ops instead of gotch's optimizer,
// whose state lives in C++ where a checkpoint cannot reach it. Here the
// moments are ordinary tensors and the step count an int.
type adamW struct {
	beta1, beta2, eps, weightDecay float64
	params                         []*ts.Tensor
	m, v                           []*ts.Tensor // first and second moments, one per param
	t                              int          // completed steps, for bias correction
}

func newAdamW(params []*ts.Tensor, beta1, beta2, eps, weightDecay float64) *adamW {
	o := &adamW{beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, params: params}
	for _, p := range params {
		o.m = append(o.m, p.MustZerosLike(false))
		o.v = append(o.v, p.MustZerosLike(false))
	}
	return o
}

// step applies one update with learning rate lr to every parameter that has
// a gradient:
//
//	p ← p·(1 − lr·wd)
//	m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²
//	p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)
func (o *adamW) step(lr float64) {
	o.t++
	bc1 := 1 - math.Pow(o.beta1, float64(o.t))
	bc2 := 1 - math.Pow(o.beta2, float64(o.t))
	torchx.NoGrad(func() {
		for i, p := range o.params {
			g := p.MustGrad(false)
			if g.MustDefined() {
				o.update(p, g, o.m[i], o.v[i], lr, bc1, bc2)
			}
			g.MustDrop()
		}
	})
}

func (o *adamW) update(p, g, m, v *ts.Tensor, lr, bc1, bc2 float64) {
	if o.weightDecay != 0 {
		torchx.Inplace(p, func() { p.MustMulScalar_(ts.FloatScalar(1 - lr*o.weightDecay)) })
	}
	torchx.Inplace(m, func() { m.MustLerp_(g, ts.FloatScalar(1-o.beta1)) })
	tmp := g.MustMul(g, false) // the step's only new buffer
	defer tmp.MustDrop()
	torchx.Inplace(v, func() { v.MustLerp_(tmp, ts.FloatScalar(1-o.beta2)) })
	if lr == 0 {
		return
	}
	// tmp ← k·(√v/√bc2 + ε) with k = −bc1/lr, so that p + m/tmp is the
	// update above in one fused op.
	k := -bc1 / lr
	v.MustSqrtOut(tmp, false).MustDrop() // the returned handle aliases tmp
	torchx.Inplace(tmp, func() { tmp.MustMulScalar_(ts.FloatScalar(k / math.Sqrt(bc2))) })
	torchx.Inplace(tmp, func() { tmp.MustAddScalar_(ts.FloatScalar(k * o.eps)) })
	torchx.Inplace(p, func() { p.MustAddcdiv_(m, tmp) })
}

// zeroGrad zeroes every parameter's gradient (in place, keeping the buffer).
func zeroGrad(params []*ts.Tensor) {
	torchx.NoGrad(func() {
		for _, p := range params {
			g := p.MustGrad(false)
			if g.MustDefined() {
				torchx.Inplace(g, g.MustZero_)
			}
			g.MustDrop()
		}
	})
}
