package sampling

import (
	"context"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// sedd runs SEDD's reverse samplers from a score network (any process).
//
// Analytic ("Tweedie τ-leaping"): with p_t = p_s·exp(ΔσR), Δσ = σ_t − σ_s,
// the reverse step of one position is exactly
//
//	p(x_s = y | x_t = x) = [s(x)·exp(−ΔσR)]_y · exp(ΔσR)[y, x]
//
// where s(x)_z = p_t(z)/p_t(x) is the score row (s_x = 1). The first factor
// (the "staggered score") is forward.Process.Propagate at noise −Δσ, the
// second its Column at Δσ.
//
// Euler: jump from x to y ≠ x with probability σ'(t)·Δt·R[y,x]·s(x)_y (the
// reverse rate times the step), else stay.
//
// Steps are counted as SEDD's get_pc_sampler counts them: T predictor
// steps on the grid t = 1, 1 − Δt, …, δ (Δt = (1 − δ)/T, δ = sampling.
// sedd_eps, SEDD's 1e-5), then one denoising step from δ to 0, always
// analytic, with the mask state excluded: T + 1 network calls.
type sedd struct {
	proc   forward.Process
	model  losses.Net
	scorer losses.Scorer
	euler  bool
	eps    float64 // δ, where the predictor steps end
}

// seddTimes are SEDD's sampling times in increasing order: τ_0 = 0, τ_1 =
// δ, τ_k = δ + (k−1)(1−δ)/T up to τ_{T+1} = 1. Step k goes from τ_k to
// τ_{k−1}; step 1 is the final denoising step.
func seddTimes(steps int, eps float64) []float64 {
	tau := make([]float64, steps+2)
	for k := 1; k <= steps+1; k++ {
		tau[k] = eps + float64(k-1)*(1-eps)/float64(steps)
	}
	tau[steps+1] = 1
	return tau
}

func (d *sedd) sample(ctx context.Context, c *chain) error {
	net := c.model(d.model)
	sched := d.proc.Schedule()
	tau := seddTimes(c.steps, d.eps)
	sigma := make([]float64, len(tau))
	for k, t := range tau[1:] {
		sigma[k+1] = sched.Sigma(t)
	}
	dt := (1 - d.eps) / float64(c.steps)
	c.start(initial(d.proc, c))
	free := c.free()
	defer free.MustDrop()
	for k := c.steps + 1; k >= 1; k-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		logS, err := d.scorer.LogScores(net, c.x, c.perSeq(sigma[k]))
		if err != nil {
			return err
		}
		h := sched.DSigma(tau[k]) * dt
		c.set(d.step(c, logS, free, sigma[k]-sigma[k-1], h, k == 1))
		logS.MustDrop()
	}
	return nil
}

// step moves the positions that can move (for absorbing the masked ones:
// a token never leaves its state) with the analytic step for Δσ = dsigma,
// or the Euler step for the integrated rate h, from log-scores logS.
func (d *sedd) step(c *chain, logS, free *ts.Tensor, dsigma, h float64, last bool) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	active := free
	if d.proc.Name() == "absorbing" {
		active = s.T(free.MustLogicalAnd(s.T(c.x.MustEq(ts.IntScalar(int64(d.proc.Vocab())), false)), false))
	}
	idx := rows(active)
	if idx == nil {
		return c.x.MustAddScalar(ts.IntScalar(0), false)
	}
	s.T(idx)
	scores := s.T(s.T(s.T(pick(logS, idx)).MustTotype(gotch.Double, false)).MustExp(false))
	xt := s.T(pick(c.x, idx))
	var next *ts.Tensor
	if d.euler && !last {
		next = s.T(d.eulerStep(scores, xt, h))
	} else {
		next = s.T(d.analyticStep(scores, xt, dsigma, last))
	}
	return put(c.x, idx, next)
}

// analyticStep draws x_s given scores [1,M,N] at x_t [1,M] and
// Δσ = σ_t − σ_s.
// On the last step the mask state (absorbing) is excluded, as SEDD does.
func (d *sedd) analyticStep(scores, xt *ts.Tensor, dsigma float64, last bool) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, v := scores.MustSize()[0], int64(d.proc.Vocab())
	neg := make([]float64, b)
	pos := make([]float64, b)
	for i := range neg {
		neg[i], pos[i] = -dsigma, dsigma
	}
	// Propagate spreads the real tokens' scores; the mask state (absorbing)
	// only ever goes to itself, so its score is added back unchanged.
	stag := s.T(d.proc.Propagate(s.T(scores.MustNarrow(-1, 0, v, false)), neg))
	if n := scores.MustSize()[2]; n > v {
		own := s.T(s.T(scores.MustNarrow(-1, v, n-v, false)).MustConstantPadNd([]int64{v, 0}, false))
		stag = s.T(stag.MustAdd(own, false))
	}
	stag = s.T(stag.MustClampMin(ts.FloatScalar(0), false))
	probs := s.T(stag.MustMul(s.T(d.proc.Column(xt, pos, gotch.Double)), false))
	if last {
		probs = s.T(probs.MustNarrow(-1, 0, v, false))
	}
	return categorical(probs)
}

// eulerStep draws x_s given scores [1,M,N] at x_t [1,M] and the
// integrated rate h = σ'(t)·Δt.
func (d *sedd) eulerStep(scores, xt *ts.Tensor, h float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	from, rate := d.proc.JumpsInto(xt, gotch.Double)
	s.T(rate)
	toward := scores
	if from != nil {
		s.T(from)
		toward = s.T(scores.MustGather(-1, from, false, false))
	}
	jump := s.T(s.T(rate.MustMul(toward, false)).MustMulScalar(ts.FloatScalar(h), false))
	total := s.T(jump.MustSumDimIntlist([]int64{-1}, true, gotch.Double, false))
	stay := s.T(s.T(total.MustRsubScalar(ts.FloatScalar(1), false)).MustClampMin(ts.FloatScalar(0), false))
	slot := s.T(categorical(s.T(ts.MustCat([]*ts.Tensor{jump, stay}, -1))))
	k := jump.MustSize()[2]
	target := slot
	if from != nil {
		target = s.T(s.T(from.MustGather(-1, s.T(s.T(slot.MustClampMax(ts.IntScalar(k-1), false)).MustUnsqueeze(-1, false)), false, false)).MustSqueezeDim(-1, false))
	}
	stays := s.T(slot.MustEq(ts.IntScalar(k), false))
	return xt.MustWhereSelf(stays, target, false)
}
