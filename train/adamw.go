package train

import (
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// adamW is torch.optim.AdamW (decoupled weight decay, bias-corrected
// moments) written with in-place tensor ops instead of gotch's optimizer,
// whose state lives in C++ where a checkpoint cannot reach it. Here the
// moments are ordinary tensors and the step count an int. It updates the
// flat parameter buffer (flat) at once: on the CPU in one fused pass that
// also updates the EMA (fusedStep), elsewhere in eight tensor ops, instead
// of eight ops per parameter tensor.
type adamW struct {
	beta1, beta2, eps, weightDecay float64
	f                              *flat
	mBuf, vBuf                     *ts.Tensor   // first and second moments [N]
	tmp                            *ts.Tensor   // the ops' scratch [N], kept: a fresh one costs page faults every step
	m, v                           []*ts.Tensor // their views, one per parameter (checkpoints)
	t                              int          // completed steps, for bias correction
	fused                          bool         // fusedStep instead of tensor ops (CPU float32)
	threads                        int          // fusedStep's goroutines
}

func newAdamW(f *flat, beta1, beta2, eps, weightDecay float64) *adamW {
	o := &adamW{beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, f: f}
	o.mBuf, o.m = f.like()
	o.vBuf, o.v = f.like()
	o.fused = fusable(f.param) && fusable(f.grad)
	o.threads = torchx.Threads()
	if !o.fused {
		o.tmp = f.param.MustZerosLike(false)
	}
	return o
}

// step applies one update with learning rate lr to every parameter, then
// updates e (nil: no EMA) from the new values:
//
//	p ← p·(1 − lr·wd)
//	m ← β1·m + (1−β1)·g          v ← β2·v + (1−β2)·g²
//	p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)
func (o *adamW) step(lr float64, e *ema) {
	o.t++
	bc1 := 1 - math.Pow(o.beta1, float64(o.t))
	bc2 := 1 - math.Pow(o.beta2, float64(o.t))
	if o.fused { // e's buffer is like the parameters'
		o.fusedStep(e, lr, bc1, bc2)
		return
	}
	torchx.NoGrad(func() { o.update(o.f.param, o.f.grad, o.mBuf, o.vBuf, o.tmp, lr, bc1, bc2) })
	if e != nil {
		e.update()
	}
}

// update is step's arithmetic on one set of tensors (any shape, the same
// for all five); tmp is scratch.
func (o *adamW) update(p, g, m, v, tmp *ts.Tensor, lr, bc1, bc2 float64) {
	if o.weightDecay != 0 {
		torchx.Inplace(p, func() { p.MustMulScalar_(ts.FloatScalar(1 - lr*o.weightDecay)) })
	}
	torchx.Inplace(m, func() { m.MustLerp_(g, ts.FloatScalar(1-o.beta1)) })
	g.MustMulOut(tmp, g, false).MustDrop() // the returned handle aliases tmp
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
