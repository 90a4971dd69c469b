package models

import (
	"fmt"
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// An embed-and-diffuse network (Spec.EmbedDim = d > 0; Diffusion-LM,
// Plaid): tokens are points e_v in R^d, a Gaussian process noises them,
// and the network maps a noisy point z_t and its noise level to x̂0, its
// estimate of the clean point. The points are learned through the loss;
// Embeddings normalises them to norm √d (unit variance per dimension), so
// that they cannot shrink to make the noise look small.

// Embeddings is the normalised token table e [VocabIn, d] (float32, with
// gradients when training): e_v = √d · E_v / ‖E_v‖.
func (m *Transformer) Embeddings() *ts.Tensor {
	if m.spec.EmbedDim == 0 {
		panic("models: Embeddings needs an embed-and-diffuse network (Spec.EmbedDim > 0)")
	}
	s := torchx.NewScope()
	defer s.Close()
	norm := s.T(s.T(m.embed.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false)).MustClampMin(ts.FloatScalar(1e-6), false))
	return s.T(m.embed.MustDiv(norm, false)).MustMulScalar(ts.FloatScalar(math.Sqrt(float64(m.spec.EmbedDim))), false)
}

// ForwardEmbeds maps noisy points z [B, L, d] (float32) and noise levels
// [B] (float32: the objective's γ(t)) to x̂0 [B, L, d]. Dropout only when
// train is true.
func (m *Transformer) ForwardEmbeds(z, level *ts.Tensor, train bool) *ts.Tensor {
	if m.spec.EmbedDim == 0 {
		panic("models: ForwardEmbeds needs an embed-and-diffuse network (Spec.EmbedDim > 0)")
	}
	size := z.MustSize()
	if len(size) != 3 || size[2] != int64(m.spec.EmbedDim) || z.DType() != gotch.Float {
		panic(fmt.Sprintf("models: z must be float32 [B, L, %d], got %v %v", m.spec.EmbedDim, z.DType(), size))
	}
	if int(size[1]) > m.cfg.MaxLen {
		panic(fmt.Sprintf("models: positions up to %d exceed model.max_len %d", size[1], m.cfg.MaxLen))
	}
	if ls := level.MustSize(); len(ls) != 1 || ls[0] != size[0] {
		panic(fmt.Sprintf("models: noise levels must be [%d], got %v", size[0], ls))
	}
	ps := &pass{rope: m.rope, train: train}
	return m.stack(m.inputOf(z, m.input.forward), level, ps, nil)
}
