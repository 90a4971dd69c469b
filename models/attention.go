package models

import (
	"fmt"
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// attention is multi-head self-attention with one fused qkv projection
// (no bias, as MDLM) and rotary positions. Attention probabilities get no
// dropout (MDLM's flash-attention call uses none); the block applies
// dropout to the output instead.
type attention struct {
	qkv, out linear
	heads    int
	fused    bool // libtorch's scaled_dot_product_attention instead of matmul-softmax
}

func (ps *params) newAttention(p *nn.Path, cfg Config) attention {
	w := cfg.Width
	return attention{
		qkv:   ps.newLinear(p.Sub("qkv"), w, 3*w, 0.02, false),
		out:   ps.newLinear(p.Sub("out"), w, w, residualStd(cfg), false),
		heads: cfg.Heads,
		fused: cfg.Attention == "fused",
	}
}

// forward maps x [B, L, W] to [B, L, W]. With a cache, the keys and values
// of x are appended to it and the queries attend to everything cached.
func (a attention) forward(x *ts.Tensor, ps *pass, kv *kvLayer) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := x.MustSize()
	b, l, w := size[0], size[1], size[2]
	h := int64(a.heads)
	qkv := s.T(a.qkv.forward(x))
	// [B, L, 3·W] → [3, B, H, L, D], a view: q, k and v as heads. They are
	// taken apart by split, unbind and view, whose gradients are one cat,
	// one stack and a view; narrow and select would each zero-fill a
	// gradient of the whole [3, B, H, L, D] (or [2, …]) and add them up.
	heads := s.T(s.T(qkv.MustView([]int64{b, l, 3, h, w / h}, false)).MustPermute([]int64{2, 0, 3, 1, 4}, false))
	parts := heads.MustSplitWithSizes([]int64{2, 1}, 0, false)
	qk, v := s.T(parts[0]), s.T(s.T(parts[1]).MustSqueezeDim(0, false))
	if ps.halves {
		// x_t ⊕ x_0: both halves at the same positions.
		half := l / 2
		qk = s.T(ts.MustCat([]*ts.Tensor{
			s.T(ps.rope.apply(s.T(qk.MustNarrow(3, 0, half, false)), ps.offset)),
			s.T(ps.rope.apply(s.T(qk.MustNarrow(3, half, half, false)), ps.offset)),
		}, 3))
	} else {
		qk = s.T(ps.rope.apply(qk, ps.offset))
	}
	qkParts := qk.MustUnbind(0, false)
	q, k := s.T(qkParts[0]), s.T(qkParts[1])
	if kv != nil {
		k, v = kv.append(s, k, v, ps.offset, ps.from, ps.filled)
	}
	var ctx *ts.Tensor
	if a.fused {
		ctx = s.T(fusedAttention(q, k, v, ps))
	} else {
		ctx = s.T(mathAttention(q, k, v, ps))
	}
	// [B, H, L, D] → [B, L, W] for the output projection (a copy).
	merged := s.T(s.T(ctx.MustPermute([]int64{0, 2, 1, 3}, false)).MustReshape([]int64{b, l, w}, false))
	return a.out.forward(merged)
}

// mathAttention is softmax(q·kᵀ + mask)·v through batched matmuls, for q
// [B, H, l, D] and k, v [B, H, n, D]; q already carries the 1/√D scale.
func mathAttention(q, k, v *ts.Tensor, ps *pass) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	qs, ks := q.MustSize(), k.MustSize()
	bh, l, n, d := qs[0]*qs[1], qs[2], ks[2], qs[3]
	q3 := s.T(q.MustReshape([]int64{bh, l, d}, false))
	kT := s.T(s.T(k.MustReshape([]int64{bh, n, d}, false)).MustTranspose(1, 2, false))
	v3 := s.T(v.MustReshape([]int64{bh, n, d}, false))
	var scores *ts.Tensor
	if ps.mask != nil {
		one := ts.FloatScalar(1)
		scores = s.T(ps.mask.MustBaddbmm(q3, kT, one, one, false))
	} else {
		scores = s.T(q3.MustBmm(kT, false))
	}
	probs := s.T(scores.MustSoftmax(-1, gotch.Invalid, false)) // Invalid: keep the dtype
	return s.T(probs.MustBmm(v3, false)).MustView(qs, false)
}

// fusedAttention calls libtorch's scaled_dot_product_attention (libtorch
// 2.x; New checks that it exists). A causal pass over a whole sequence uses
// the op's own causal flag so that flash kernels stay eligible; a cached
// chunk passes its mask rows explicitly.
func fusedAttention(q, k, v *ts.Tensor, ps *pass) *ts.Tensor {
	isCausal := ps.causal && ps.offset == 0
	mask := ps.mask
	if mask == nil || isCausal {
		mask = ts.None // undefined: no mask
	}
	out, err := ts.ScaledDotProductAttention(q, k, v, mask, 0, isCausal, []float64{1})
	if err != nil {
		panic(fmt.Errorf("models: fused attention: %w", err))
	}
	return out
}

// probeFused reports why model.attention fused cannot run on this
// libtorch (nil if it can), by calling the op once on a tiny input.
func probeFused(device gotch.Device) error {
	x := ts.MustOnes([]int64{1, 1, 2, 2}, gotch.Float, device)
	defer x.MustDrop()
	out, err := ts.ScaledDotProductAttention(x, x, x, ts.None, 0, true, []float64{1})
	if err != nil {
		return fmt.Errorf("model.attention: fused needs libtorch's scaled_dot_product_attention, which this libtorch lacks (use math): %w", err)
	}
	out.MustDrop()
	return nil
}

// residualStd is GPT-2's init for the projections that write into the
// residual stream (attention out, MLP fc2): 0.02/√(2·layers), so that the
// stream's variance at init does not grow with depth.
func residualStd(cfg Config) float64 {
	return 0.02 / math.Sqrt(2*float64(cfg.Layers))
}
