package sampling

import (
	"context"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// remdm is ReMDM's remasking sampler for absorbing networks: at each step
// t→s a decoded token is masked again with probability σ_t, and a masked
// position unmasks with probability (α_s − (1−σ_t)·α_t)/(1−α_t), which
// keeps MDLM's marginals q(x_t|x0), so an MDLM network needs no retraining.
// Decoded tokens can thus be revised: more steps buy better samples
// (inference-time scaling). σ_t may not exceed
// σ_max = min(1, (1−α_s)/α_t); the schedules are
//
//	cap:     σ_t = min(η, σ_max)
//	rescale: σ_t = η·σ_max
//	conf:    σ_t^ℓ = η·σ_max·softmax(−ψ)^ℓ over the decoded positions ℓ,
//	         ψ^ℓ the probability p̃ (before temperature and top-p) gave
//	         the token when it was decoded, so
//	         the least confident tokens are remasked first; masked
//	         positions take σ = 0 (they unmask as in MDLM), as ReMDM does.
//
// η = 0 is MDLM's ancestral sampler. Given tokens are never remasked.
type remdm struct {
	proc     forward.Process
	model    losses.Net
	den      losses.Denoiser
	schedule string
	eta      float64
}

func remaskNames() []string { return []string{"cap", "rescale", "conf"} }

func (r *remdm) sample(ctx context.Context, c *chain) error {
	net := c.model(r.model)
	sigma := grid(r.proc.Schedule(), c.steps)
	c.start(initial(r.proc, c))
	free := c.free()
	defer free.MustDrop()
	psi := ts.MustZeros([]int64{c.b, c.l}, gotch.Double, c.device)
	defer func() { psi.MustDrop() }()
	m := int64(r.proc.Vocab())
	for i := c.steps; i >= 1; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		logp, err := r.den.LogX0(net, c.x, c.perSeq(sigma[i]))
		if err != nil {
			return err
		}
		s := torchx.NewScope()
		s.T(logp)
		at, as := alpha(sigma[i]), alpha(sigma[i-1])
		masked := s.T(c.x.MustEq(ts.IntScalar(m), false))
		decoded := s.T(s.T(masked.MustLogicalNot(false)).MustLogicalAnd(free, false))
		sig := s.T(r.sigma(s, c, psi, decoded, math.Min(1, (1-as)/at)))
		pUnmask := s.T(s.T(sig.MustMulScalar(ts.FloatScalar(at/(1-at)), false)).MustAddScalar(ts.FloatScalar((as-at)/(1-at)), false))
		u := s.T(ts.MustRand([]int64{c.b, c.l}, gotch.Double, c.device))
		w := s.T(ts.MustRand([]int64{c.b, c.l}, gotch.Double, c.device))
		unmask := s.T(masked.MustLogicalAnd(s.T(u.MustLtTensor(pUnmask, false)), false))
		again := s.T(decoded.MustLogicalAnd(s.T(w.MustLtTensor(sig, false)), false))
		next := c.x
		if idx := rows(unmask); idx != nil {
			s.T(idx)
			p0 := s.T(cleanAt(logp, idx))
			tok := s.T(categorical(s.T(c.adjust(p0))))
			conf := s.T(p0.MustGather(-1, s.T(tok.MustUnsqueeze(-1, false)), false, false))
			next = s.T(put(c.x, idx, tok))
			newPsi := put(psi, idx, conf)
			psi.MustDrop()
			psi = newPsi
		}
		c.set(next.MustMaskedFill(again, ts.IntScalar(m), false))
		s.Close()
	}
	return nil
}

// sigma is σ_t per position [B,L] (float64): the same everywhere for cap
// and rescale; for conf spread over the decoded positions and 0 at the
// masked ones, which then unmask as in MDLM.
func (r *remdm) sigma(s *torchx.Scope, c *chain, psi, decoded *ts.Tensor, sigmaMax float64) *ts.Tensor {
	switch r.schedule {
	case "cap":
		return ts.MustFull([]int64{c.b, c.l}, ts.FloatScalar(math.Min(r.eta, sigmaMax)), gotch.Double, c.device)
	case "rescale":
		return ts.MustFull([]int64{c.b, c.l}, ts.FloatScalar(r.eta*sigmaMax), gotch.Double, c.device)
	}
	// softmax(−ψ) over the decoded positions; ψ ∈ [0,1] so exp(−ψ) is safe.
	on := s.T(decoded.MustTotype(gotch.Double, false))
	weight := s.T(s.T(s.T(psi.MustNeg(false)).MustExp(false)).MustMul(on, false))
	total := s.T(s.T(weight.MustSumDimIntlist([]int64{-1}, true, gotch.Double, false)).MustClampMin(ts.FloatScalar(1e-300), false))
	return s.T(weight.MustDiv(total, false)).MustMulScalar(ts.FloatScalar(r.eta*sigmaMax), false)
}
