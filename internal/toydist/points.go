package toydist

import (
	"math"

	"github.com/sugarme/gotch/ts"
)

// TwoPoints is the embed-and-diffuse toy whose denoiser is known in closed
// form: tokens 0 and 1 at the points e = −1 and +1 of R¹, data i.i.d. with
// p(x = 1) = P. Its output is the noise ε̂ = (z − α·x̂0)/σ implied by the
// exact posterior mean x̂0 = E[e | z_t] = tanh(α·z/σ² + ½·log(P/(1−P)))
// times Shrink (1 = exact), at the noise level γ it is given (α² =
// sigmoid(−γ), σ² = sigmoid(γ)). It implements losses.ContinuousNet.
type TwoPoints struct{ P, Shrink float64 }

// Forward is not defined: the network takes points.
func (n TwoPoints) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	panic("toydist: TwoPoints takes points (ForwardEmbeds)")
}

// Embeddings is e = [−1, +1] as [2, 1] float32.
func (n TwoPoints) Embeddings() *ts.Tensor {
	return ts.MustOfSlice([]float32{-1, 1}).MustView([]int64{2, 1}, true)
}

// ForwardEmbeds maps z [B, L, 1] and γ [B] to ε̂ [B, L, 1] (float32).
func (n TwoPoints) ForwardEmbeds(z, level *ts.Tensor, train bool) *ts.Tensor {
	size := z.MustSize()
	zs, gs := z.Float64Values(), level.Float64Values()
	out := make([]float32, len(zs))
	per := len(zs) / int(size[0])
	for i, v := range zs {
		g := gs[i/per]
		a2, s2 := 1/(1+math.Exp(g)), 1/(1+math.Exp(-g))
		xh := n.Shrink * math.Tanh(math.Sqrt(a2)*v/s2+0.5*math.Log(n.P/(1-n.P)))
		out[i] = float32((v - math.Sqrt(a2)*xh) / math.Sqrt(s2))
	}
	return ts.MustOfSlice(out).MustView(size, true)
}
