package train

import (
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// clipGradNorm returns the global L2 norm of the gradients and, when
// maxNorm > 0 and the norm exceeds it, scales every gradient in place by
// maxNorm/(norm + 1e-6), as torch.nn.utils.clip_grad_norm_ does. The sum of
// squares accumulates in float64 on the parameters' device; one scalar
// comes back to the host, which the trainer needs anyway to stop on a
// non-finite gradient.
func clipGradNorm(params []*ts.Tensor, maxNorm float64) float64 {
	var norm float64
	torchx.NoGrad(func() {
		var grads []*ts.Tensor
		defer func() {
			for _, g := range grads {
				g.MustDrop()
			}
		}()
		var sq *ts.Tensor
		for _, p := range params {
			g := p.MustGrad(false)
			if !g.MustDefined() {
				g.MustDrop()
				continue
			}
			grads = append(grads, g)
			if sq == nil {
				sq = ts.MustZeros([]int64{1}, gotch.Double, g.MustDevice())
			}
			n := g.MustNorm(false)
			torchx.Inplace(sq, func() { sq.MustAddcmul_(n, n) })
			n.MustDrop()
		}
		if sq == nil {
			return
		}
		norm = math.Sqrt(sq.MustFloat64Value([]int64{0}))
		sq.MustDrop()
		if coef := maxNorm / (norm + 1e-6); maxNorm > 0 && coef < 1 {
			for _, g := range grads {
				torchx.Inplace(g, func() { g.MustMulScalar_(ts.FloatScalar(coef)) })
			}
		}
	})
	return norm
}
