package models

import (
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// block is one pre-norm transformer block:
//
//	x = x + gate₁ · dropout(attn(modulate(norm₁(x), shift₁, scale₁)))
//	x = x + gate₂ · dropout(mlp(modulate(norm₂(x), shift₂, scale₂)))
//
// where modulate(h, shift, scale) = shift + h·(1 + scale) and the six
// per-sequence vectors come from the time features through one linear
// layer (DiT's adaLN-Zero). That layer starts at zero, so every gate is 0
// and a time-conditioned block is the identity at init, as in DiT and
// MDLM. Without time conditioning there is no modulation and no gate.
type block struct {
	norm1, norm2 layerNorm
	attn         attention
	fc1, fc2     linear  // MLP with GELU (tanh approximation) in between
	ada          *linear // cond → 6·W modulation; nil without time conditioning
	dropout      float64
}

func (ps *params) newBlock(p *nn.Path, cfg Config, timeCond bool) *block {
	w, hidden := cfg.Width, cfg.hidden()
	b := &block{
		norm1:   ps.newLayerNorm(p.Sub("norm1"), w),
		attn:    ps.newAttention(p.Sub("attn"), cfg),
		norm2:   ps.newLayerNorm(p.Sub("norm2"), w),
		fc1:     ps.newLinear(p.Sub("mlp").Sub("fc1"), w, hidden, 0.02, true),
		fc2:     ps.newLinear(p.Sub("mlp").Sub("fc2"), hidden, w, residualStd(cfg), true),
		dropout: cfg.Dropout,
	}
	if timeCond {
		ada := ps.newLinear(p.Sub("ada"), cfg.CondDim, 6*w, 0, true)
		b.ada = &ada
	}
	return b
}

// forward maps the residual stream x [B, L, W] to the next one.
func (b *block) forward(x *ts.Tensor, ps *pass, kv *kvLayer) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	var attnMod, mlpMod *modulation // nil: no time conditioning
	if b.ada != nil {
		mods := modulations(s, *b.ada, ps.cond, 2, true)
		attnMod, mlpMod = &mods[0], &mods[1]
	}
	h := s.T(attnMod.apply(b.norm1.forward(x)))
	x = s.T(b.residual(x, s.T(b.attn.forward(h, ps, kv)), attnMod, ps))
	h = s.T(mlpMod.apply(b.norm2.forward(x)))
	f := s.T(b.fc2.forward(s.T(s.T(b.fc1.forward(h)).MustGelu("tanh", false))))
	return s.Keep(b.residual(x, f, mlpMod, ps))
}

// residual returns x + gate·dropout(y), or x + dropout(y) when m is nil.
func (b *block) residual(x, y *ts.Tensor, m *modulation, ps *pass) *ts.Tensor {
	if ps.train && b.dropout > 0 {
		if ps.noise != nil {
			y = ps.dropout(y)
		} else {
			y = ts.MustDropout(y, b.dropout, true)
		}
		defer y.MustDrop()
	}
	if m == nil {
		return x.MustAdd(y, false)
	}
	return x.MustAddcmul(m.gate, y, false)
}

// modulation is one adaLN group, each vector [B, 1, W]: h ↦ shift +
// h·(1+scale), and the gate of the residual branch (nil in the final layer).
type modulation struct {
	shift, onePlusScale, gate *ts.Tensor
}

// modulations computes ada(cond) and splits it into groups of shift, scale
// and, if withGate, gate; the tensors belong to s.
func modulations(s *torchx.Scope, ada linear, cond *ts.Tensor, groups int, withGate bool) []modulation {
	per := 2
	if withGate {
		per = 3
	}
	all := s.T(s.T(ada.forward(cond)).MustUnsqueeze(1, false))
	chunks := all.MustChunk(int64(groups*per), 2, false)
	for _, c := range chunks {
		s.T(c)
	}
	mods := make([]modulation, groups)
	for g := range mods {
		c := chunks[g*per:]
		mods[g].shift = c[0]
		mods[g].onePlusScale = s.T(c[1].MustAddScalar(ts.FloatScalar(1), false))
		if withGate {
			mods[g].gate = c[2]
		}
	}
	return mods
}

// apply modulates h, consuming it; a nil m returns h unchanged.
func (m *modulation) apply(h *ts.Tensor) *ts.Tensor {
	if m == nil {
		return h
	}
	defer h.MustDrop()
	return m.shift.MustAddcmul(h, m.onePlusScale, false)
}
