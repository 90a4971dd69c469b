package models

import (
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// timeEmbed turns noise levels σ into the conditioning vector c of the
// adaLN layers, as DiT's and MDLM's TimestepEmbedder do:
//
//	f = [cos(σ·ω) | sin(σ·ω)],  ω_j = 10000^(−j/half), j < half = cond_dim/2
//	c = SiLU(fc2(SiLU(fc1(f))))
//
// σ goes in unscaled (MDLM feeds σ ∈ [0, ~7], not t·1000). The outer SiLU is
// the one DiT puts at the start of each adaLN layer; applying it once here
// saves one pass per block.
type timeEmbed struct {
	freqs    *ts.Tensor // ω, [1, half]
	fc1, fc2 linear
}

func (ps *params) newTimeEmbed(p *nn.Path, condDim int, device gotch.Device) timeEmbed {
	half := condDim / 2
	freqs := make([]float32, half)
	for j := range freqs {
		freqs[j] = float32(math.Exp(-math.Log(10000) * float64(j) / float64(half)))
	}
	return timeEmbed{
		freqs: ts.MustOfSlice(freqs).MustView([]int64{1, int64(half)}, true).MustTo(device, true),
		fc1:   ps.newLinear(p.Sub("fc1"), condDim, condDim, 0.02, true),
		fc2:   ps.newLinear(p.Sub("fc2"), condDim, condDim, 0.02, true),
	}
}

// forward maps σ [B] to c [B, cond_dim].
func (t timeEmbed) forward(sigma *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	args := s.T(s.T(sigma.MustUnsqueeze(1, false)).MustMul(t.freqs, false))
	f := s.T(ts.MustCat([]*ts.Tensor{s.T(args.MustCos(false)), s.T(args.MustSin(false))}, 1))
	h := s.T(s.T(t.fc1.forward(f)).MustSilu(false))
	return s.T(t.fc2.forward(h)).MustSilu(false)
}
