package train

import (
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// ema keeps an exponential moving average of the parameters,
// shadow ← decay·shadow + (1−decay)·param after every optimizer step, as
// MDLM and SEDD do (no warmup of the decay), starting from the weights the
// run starts with.
//
// It works on the flat parameter buffer: one op per update (on the CPU the
// update runs inside AdamW's fused pass instead, adamW.step), three per swap.
type ema struct {
	decay  float64
	f      *flat
	buf    *ts.Tensor   // the averages [N]
	shadow []*ts.Tensor // their views, one per parameter (checkpoints)
}

func newEMA(f *flat, decay float64) *ema {
	e := &ema{decay: decay, f: f}
	e.buf, e.shadow = f.like()
	e.reset()
	return e
}

// reset restarts the averages from the current parameters.
func (e *ema) reset() {
	torchx.NoGrad(func() { e.buf.Copy_(e.f.param) })
}

func (e *ema) update() {
	w := ts.FloatScalar(1 - e.decay)
	torchx.NoGrad(func() { torchx.Inplace(e.buf, func() { e.buf.MustLerp_(e.f.param, w) }) })
}

// swap exchanges the parameters' values with the averages (twice restores).
func (e *ema) swap() {
	torchx.NoGrad(func() {
		tmp := e.f.param.MustZerosLike(false)
		tmp.Copy_(e.f.param)
		e.f.param.Copy_(e.buf)
		e.buf.Copy_(tmp)
		tmp.MustDrop()
	})
}
