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
// σ_max = min(1, (1−α_s)/α_t); the schedules are, as in ReMDM's code,
//
//	cap:     σ_t = min(η, σ_max)
//	rescale: σ_t = η·σ_max
//	conf:    σ_t^ℓ = σ_max·softmax(−ψ)^ℓ over the decoded positions ℓ (no
//	         η), ψ^ℓ the probability the sampling distribution (p̃ after
//	         temperature and top-p) gave the token when it was decoded, so
//	         the least confident tokens are remasked first; masked
//	         positions take σ = 0 (they unmask as in MDLM).
//	loop:    three phases over t ∈ [1, 0]: MDLM steps while α rises
//	         linearly from 0 (t = 1) to α_on (t = t_on); then, for t in
//	         (t_off, t_on], α held at α_on and every decoded token remasked
//	         with σ = η (masked ones unmask with σ·α_on/(1−α_on), which
//	         keeps the marginal); then MDLM steps while α rises from α_on
//	         (t = t_off) to 1 (t = 0). ReMDM's best MAUVE numbers use it.
//
// η = 0 (cap, rescale) is MDLM's ancestral sampler. Given tokens are never
// remasked.
type remdm struct {
	proc     forward.Process
	model    losses.Net
	den      losses.Denoiser
	schedule string
	eta      float64
	loop     loopWindow
}

// loopWindow is ReMDM-loop's window: t_on > t_off and α there.
type loopWindow struct{ tOn, tOff, alphaOn float64 }

// alpha is ReMDM-loop's α(t), and whether t lies in the remasking window.
func (w loopWindow) alpha(t float64) (float64, bool) {
	switch {
	case t > w.tOn:
		return (1 - t) * w.alphaOn / (1 - w.tOn), false
	case t <= w.tOff:
		return 1 - t*(1-w.alphaOn)/w.tOff, false
	}
	return w.alphaOn, true
}

func remaskNames() []string { return []string{"cap", "rescale", "conf", "loop"} }

// alphas are α_t and α_s of step i (t = i/T to s = (i−1)/T), the noise
// level the network is told, and whether the step remasks with σ = η
// (only the loop's window).
func (r *remdm) alphas(sigma []float64, i, steps int) (at, as, sig float64, window bool) {
	if r.schedule != "loop" {
		return alpha(sigma[i]), alpha(sigma[i-1]), sigma[i], false
	}
	t, s := float64(i)/float64(steps), float64(i-1)/float64(steps)
	at, window = r.loop.alpha(t)
	as, _ = r.loop.alpha(s)
	if window {
		as = at // α is held inside the window, whichever phase s lies in
	}
	return at, as, -math.Log(max(at, 1e-300)), window
}

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
		at, as, noise, window := r.alphas(sigma, i, c.steps)
		logp, err := r.den.LogX0(net, c.x, c.perSeq(noise))
		if err != nil {
			return err
		}
		s := torchx.NewScope()
		s.T(logp)
		masked := s.T(c.x.MustEq(ts.IntScalar(m), false))
		decoded := s.T(s.T(masked.MustLogicalNot(false)).MustLogicalAnd(free, false))
		sig := s.T(r.sigma(s, c, psi, decoded, math.Min(1, (1-as)/max(at, 1e-300)), window))
		// Unmasking keeps the marginal: (α_s − (1−σ)α_t)/(1−α_t); at
		// α_t = 0 (the first step) every position is masked and this is α_s.
		pUnmask := s.T(s.T(sig.MustMulScalar(ts.FloatScalar(at/(1-at)), false)).MustAddScalar(ts.FloatScalar((as-at)/(1-at)), false))
		u := s.T(ts.MustRand([]int64{c.b, c.l}, gotch.Double, c.device))
		w := s.T(ts.MustRand([]int64{c.b, c.l}, gotch.Double, c.device))
		unmask := s.T(masked.MustLogicalAnd(s.T(u.MustLtTensor(pUnmask, false)), false))
		again := s.T(decoded.MustLogicalAnd(s.T(w.MustLtTensor(sig, false)), false))
		next := c.x
		if idx := rows(unmask); idx != nil {
			s.T(idx)
			p0 := s.T(c.adjust(s.T(cleanAt(logp, idx))))
			tok := s.T(categorical(p0))
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

// sigma is σ_t per position [B,L] (float64): the same everywhere for cap,
// rescale and loop (η inside its window, 0 outside); for conf spread over
// the decoded positions and 0 at the masked ones, which then unmask as in
// MDLM.
func (r *remdm) sigma(s *torchx.Scope, c *chain, psi, decoded *ts.Tensor, sigmaMax float64, window bool) *ts.Tensor {
	full := func(v float64) *ts.Tensor {
		return ts.MustFull([]int64{c.b, c.l}, ts.FloatScalar(v), gotch.Double, c.device)
	}
	switch r.schedule {
	case "cap":
		return full(math.Min(r.eta, sigmaMax))
	case "rescale":
		return full(r.eta * sigmaMax)
	case "loop":
		if window {
			return full(r.eta)
		}
		return full(0)
	}
	// softmax(−ψ) over the decoded positions; ψ ∈ [0,1] so exp(−ψ) is safe.
	on := s.T(decoded.MustTotype(gotch.Double, false))
	weight := s.T(s.T(s.T(psi.MustNeg(false)).MustExp(false)).MustMul(on, false))
	total := s.T(s.T(weight.MustSumDimIntlist([]int64{-1}, true, gotch.Double, false)).MustClampMin(ts.FloatScalar(1e-300), false))
	return s.T(weight.MustDiv(total, false)).MustMulScalar(ts.FloatScalar(sigmaMax), false)
}
