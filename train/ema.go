package train

import (
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// ema keeps an exponential moving average of the parameters,
// shadow ← decay·shadow + (1−decay)·param after every optimizer step, as
// MDLM and SEDD do (no warmup of the decay), starting from the weights the
// run starts with.
type ema struct {
	decay  float64
	params []*ts.Tensor
	shadow []*ts.Tensor
}

func newEMA(params []*ts.Tensor, decay float64) *ema {
	e := &ema{decay: decay, params: params}
	for _, p := range params {
		e.shadow = append(e.shadow, p.MustZerosLike(false))
	}
	e.reset()
	return e
}

// reset restarts the averages from the current parameters.
func (e *ema) reset() {
	torchx.NoGrad(func() {
		for i, p := range e.params {
			e.shadow[i].Copy_(p)
		}
	})
}

func (e *ema) update() {
	w := ts.FloatScalar(1 - e.decay)
	torchx.NoGrad(func() {
		for i, p := range e.params {
			torchx.Inplace(e.shadow[i], func() { e.shadow[i].MustLerp_(p, w) })
		}
	})
}

// swap exchanges the parameters' values with the averages (twice restores).
func (e *ema) swap() {
	torchx.NoGrad(func() {
		for i, p := range e.params {
			tmp := p.MustZerosLike(false)
			tmp.Copy_(p)
			p.Copy_(e.shadow[i])
			e.shadow[i].Copy_(tmp)
			tmp.MustDrop()
		}
	})
}
