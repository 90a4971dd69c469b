package losses

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// headNet is a network whose output head the loss can run itself, a chunk
// of rows at a time (models.Transformer): the final hidden states (after
// the output norm) at chosen flat positions, and the vocabulary
// projection, logits = h·Wᵀ + b.
type headNet interface {
	HiddenRows(x, rows *ts.Tensor, train bool) *ts.Tensor
	Projection() (weight, bias *ts.Tensor)
}

// chunkedCE is the cross-entropy of the logits z = h·Wᵀ + b at the rows of
// h [M,d] against target [M] (int64), weighted,
//
//	cost_i = weight_i · (logsumexp(z_i) − z_i[target_i])        (returned, [M], no gradient)
//	loss   = Σ_i scale_i · cost_i                                (a scalar with gradient)
//
// computed chunk rows at a time, so that no more than [chunk, V] logits
// exist at once: at GPT-2's vocabulary a micro-batch of 32 × 1024 rows
// has 6.6 GB of fp32 logits, and autograd would keep them, and their
// softmax, for the backward pass. Here the backward pass of the head is
// done in the forward pass, chunk by chunk (as Liger's fused linear
// cross-entropy does), with c_i = scale_i·weight_i:
//
//	∂loss/∂z_i = c_i · (softmax(z_i) − e_{target_i})
//	∂loss/∂h_i = ∂loss/∂z_i · W     ∂loss/∂W = Σ_i (∂loss/∂z_i)ᵀ h_i     ∂loss/∂b = Σ_i ∂loss/∂z_i
//
// and loss is returned as the surrogate value + ℓ − ℓ.detach() with
// ℓ = ⟨h, G_h⟩ + ⟨W, G_W⟩ + ⟨b, G_b⟩: its value is the sum, its gradient
// (G_h, G_W, G_b) times whatever the caller's upstream gradient is — exact,
// since loss is a scalar the caller only scales (Loss divides it by the
// token count). scale nil is all ones. h's gradient flows on into the
// network; W and b are the projection's own tensors.
func chunkedCE(h, w, b, target, weight, scale *ts.Tensor, chunk int) (loss, cost *ts.Tensor, err error) {
	ct := softmaxDType(h)
	g := &headGrads{}
	defer g.drop()
	var coef *ts.Tensor
	torchx.NoGrad(func() {
		g.h, g.w = h.MustZerosLike(false), w.MustZerosLike(false)
		if hasBias(b) {
			g.b = b.MustZerosLike(false)
		}
		coef = weight.MustTotype(ct, false)
		if scale != nil {
			sc := scale.MustTotype(ct, false)
			coef = coef.MustMul(sc, true)
			sc.MustDrop()
		}
	})
	defer coef.MustDrop()
	hd := h.MustDetach(false)
	defer hd.MustDrop()
	if cost, err = chunkRows(hd, w, b, target, weight, coef, g, chunk); err != nil {
		return nil, nil, err
	}
	s := torchx.NewScope()
	defer s.Close()
	dot := func(x, gx *ts.Tensor) *ts.Tensor {
		return s.T(s.T(x.MustMul(gx, false)).MustSum(ct, false))
	}
	lin := s.T(dot(h, g.h).MustAdd(dot(w, g.w), false))
	if g.b != nil {
		lin = s.T(lin.MustAdd(dot(b, g.b), false))
	}
	var value *ts.Tensor
	torchx.NoGrad(func() {
		c := weightedSum(cost, scale)
		value = s.T(c.MustSub(lin, true))
	})
	return lin.MustAdd(value, false), cost, nil
}

// headGrads are the head's gradients chunkedCE accumulates: of the hidden
// states (row by row), of the projection's weight and bias (summed; b nil
// without a bias).
type headGrads struct{ h, w, b *ts.Tensor }

func (g *headGrads) drop() {
	for _, x := range []*ts.Tensor{g.h, g.w, g.b} {
		if x != nil {
			x.MustDrop()
		}
	}
}

// softmaxDType is the dtype the chunks compute the softmax in: float32
// under bf16 autocast too, float64 for a float64 net.
func softmaxDType(h *ts.Tensor) gotch.DType {
	if h.DType() == gotch.Double {
		return gotch.Double
	}
	return gotch.Float
}

func hasBias(b *ts.Tensor) bool { return b != nil && b.MustDefined() }

// chunkRows runs ceChunk over the rows of h [M,d], chunk at a time, without
// gradient recording, and returns the costs [M]; g nil: costs only.
func chunkRows(h, w, b, target, weight, coef *ts.Tensor, g *headGrads, chunk int) (cost *ts.Tensor, err error) {
	size := h.MustSize()
	if len(size) != 2 || chunk < 1 {
		return nil, fmt.Errorf("chunked cross-entropy: hidden states %v, chunk %d: want [M, d] and chunk ≥ 1", size, chunk)
	}
	M := size[0]
	torchx.NoGrad(func() {
		cost = ts.MustZeros([]int64{M}, softmaxDType(h), h.MustDevice())
		for lo := int64(0); lo < M; lo += int64(chunk) {
			ceChunk(h, w, b, target, weight, coef, g, cost, lo, min(int64(chunk), M-lo))
		}
	})
	return cost, nil
}

// ceChunk does rows lo…lo+n−1 of chunkedCE: their costs into cost, their
// gradients into g (rows of g.h; g.w and g.b accumulated); g nil: costs only.
func ceChunk(h, w, b, target, weight, coef *ts.Tensor, g *headGrads, cost *ts.Tensor, lo, n int64) {
	s := torchx.NewScope()
	defer s.Close()
	ct := softmaxDType(h)
	hc := s.T(h.MustNarrow(0, lo, n, false))
	bias := ts.None
	if hasBias(b) {
		bias = b
	}
	z := s.T(s.T(ts.MustLinear(hc, w, bias)).MustTotype(ct, false))
	tc := s.T(s.T(target.MustNarrow(0, lo, n, false)).MustUnsqueeze(-1, false))
	lse := s.T(z.MustLogsumexp([]int64{-1}, true, false))
	picked := s.T(z.MustGather(-1, tc, false, false))
	wc := s.T(weight.MustNarrow(0, lo, n, false))
	c := s.T(s.T(s.T(lse.MustSub(picked, false)).MustSqueezeDim(-1, false)).MustMul(s.T(wc.MustTotype(ct, false)), false))
	dst := s.T(cost.MustNarrow(0, lo, n, false))
	dst.Copy_(c)
	if g == nil {
		return
	}
	// ∂/∂z = coef·(softmax(z) − onehot(target)), in the hidden states' dtype.
	p := s.T(s.T(z.MustSub(lse, false)).MustExp(false))
	minus := s.T(ts.MustFull([]int64{n, 1}, ts.FloatScalar(-1), ct, z.MustDevice()))
	torchx.Inplace(p, func() { p.MustScatterAdd_(-1, tc, minus) })
	cc := s.T(s.T(coef.MustNarrow(0, lo, n, false)).MustUnsqueeze(-1, false))
	dz := s.T(s.T(p.MustMul(cc, false)).MustTotype(h.DType(), false))
	rows := s.T(g.h.MustNarrow(0, lo, n, false))
	rows.Copy_(s.T(dz.MustMm(w, false)))
	torchx.Inplace(g.w, func() { g.w.MustAddmm_(s.T(dz.MustT(false)), hc) })
	if g.b != nil {
		torchx.Inplace(g.b, func() { g.b.MustAdd_(s.T(dz.MustSumDimIntlist([]int64{0}, false, h.DType(), false))) })
	}
}

// chunkedCost is chunkedCE's cost alone, without gradients (evaluation):
// cost_i = weight_i·(logsumexp(z_i) − z_i[target_i]) with no more than
// [chunk, V] logits at once.
func chunkedCost(h, w, b, target, weight *ts.Tensor, chunk int) (*ts.Tensor, error) {
	return chunkRows(h, w, b, target, weight, nil, nil, chunk)
}

// weightedSum is Σ_i scale_i·cost_i (scale nil: all ones; cost already
// holds the weights) in cost's dtype.
func weightedSum(cost, scale *ts.Tensor) *ts.Tensor {
	if scale == nil {
		return cost.MustSum(cost.DType(), false)
	}
	sc := scale.MustTotype(cost.DType(), false)
	defer sc.MustDrop()
	prod := cost.MustMul(sc, false)
	defer prod.MustDrop()
	return prod.MustSum(cost.DType(), false)
}
