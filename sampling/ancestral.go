package sampling

import (
	"context"
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// ancestral draws x_s ~ p_θ(x_s|x_t) step by step from t = 1 to 0, with
// p_θ = forward.ModelPosterior of the network's p̃(x0|x_t), for any process:
// D3PM's sampler for uniform and embedding (in the configured form), and
// MDLM's for absorbing. There ModelPosterior says that a masked position
// unmasks with probability (α_s−α_t)/(1−α_t) to a draw from p̃ and an
// unmasked one stays; it is drawn in that order (first which positions
// unmask, then their tokens), so that a step costs in proportion to the
// positions that unmask rather than to L·V.
//
// With reuse (ancestral-cached, absorbing networks without time input) it
// is MDLM's cached sampler: p̃ depends on x_t alone, so when no position of
// the batch changed in a step the previous p̃ is still exact and no network
// call is needed. The random draws are the same with and without reuse, so
// both give identical samples under one seed.
type ancestral struct {
	proc  forward.Process
	model losses.Net
	den   losses.Denoiser
	form  forward.Form
	reuse bool
}

func (a *ancestral) sample(ctx context.Context, c *chain) error {
	net := c.model(a.model)
	var memo x0Memo
	defer memo.drop()
	sigma := grid(a.proc.Schedule(), c.steps)
	c.start(initial(a.proc, c))
	for i := c.steps; i >= 1; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		logp, err := memo.get(c, a.reuse, func() (*ts.Tensor, error) { return a.den.LogX0(net, c.x, c.perSeq(sigma[i])) })
		if err != nil {
			return err
		}
		if a.proc.Name() == "absorbing" {
			c.set(a.unmask(c, logp, sigma[i-1], sigma[i]))
		} else {
			c.set(a.posterior(c, logp, sigma[i-1], sigma[i]))
		}
	}
	return nil
}

// unmask is MDLM's step from σ_t to σ_s on absorbing states.
func (a *ancestral) unmask(c *chain, logp *ts.Tensor, sigmaS, sigmaT float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	at, as := alpha(sigmaT), alpha(sigmaS)
	u := s.T(ts.MustRand([]int64{c.b, c.l}, gotch.Double, c.device))
	masked := s.T(c.x.MustEq(ts.IntScalar(int64(a.proc.Vocab())), false))
	move := s.T(masked.MustLogicalAnd(s.T(u.MustLt(ts.FloatScalar((as-at)/(1-at)), false)), false))
	idx := rows(move)
	if idx == nil {
		return c.x.MustAddScalar(ts.IntScalar(0), false)
	}
	s.T(idx)
	tok := s.T(categorical(s.T(c.adjust(s.T(cleanAt(logp, idx))))))
	return put(c.x, idx, tok)
}

// posterior is the step for processes in which every position moves.
func (a *ancestral) posterior(c *chain, logp *ts.Tensor, sigmaS, sigmaT float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	p0 := s.T(c.adjust(s.T(s.T(logp.MustTotype(gotch.Double, false)).MustExp(false))))
	post := s.T(forward.ModelPosterior(a.proc, p0, c.x, c.perSeq(sigmaS), c.perSeq(sigmaT), a.form))
	return categorical(post)
}

// x0Memo holds the last log p̃ with the states it was computed for.
type x0Memo struct{ x, logp *ts.Tensor }

// get returns log p̃ for c.x, from memory when reuse is on and c.x has not
// changed, else from compute. The result belongs to the memo.
func (m *x0Memo) get(c *chain, reuse bool, compute func() (*ts.Tensor, error)) (*ts.Tensor, error) {
	if reuse && m.x != nil && c.x.MustEqual(m.x, false) {
		return m.logp, nil
	}
	logp, err := compute()
	if err != nil {
		return nil, err
	}
	m.drop()
	m.x, m.logp = c.x.MustAddScalar(ts.IntScalar(0), false), logp
	return logp, nil
}

func (m *x0Memo) drop() {
	if m.x != nil {
		m.x.MustDrop()
		m.logp.MustDrop()
		m.x, m.logp = nil, nil
	}
}

// grid is the noise level at the points t_i = i/T of a T-step chain,
// i = 0..T; the chain steps from t_i to t_{i−1}. Its last target, σ_0, is
// 0 (clean tokens) even where the schedule's σ(0) is not (geometric).
func grid(sched forward.Schedule, steps int) []float64 {
	sigma := make([]float64, steps+1)
	for i := 1; i <= steps; i++ {
		sigma[i] = sched.Sigma(float64(i) / float64(steps))
	}
	return sigma
}

// alpha is e^{−σ}, the probability that a token is untouched.
func alpha(sigma float64) float64 { return math.Exp(-sigma) }

// initial is the state the reverse chain starts from: all masks for the
// absorbing process (MDLM's start, which differs from the prior by the
// α(1) = ε of tokens the schedule leaves), a draw from the prior
// otherwise.
func initial(proc forward.Process, c *chain) *ts.Tensor {
	if proc.Name() == "absorbing" {
		return ts.MustFull([]int64{c.b, c.l}, ts.IntScalar(int64(proc.Vocab())), gotch.Int64, c.device)
	}
	return forward.SamplePrior(proc, c.b, c.l, c.device)
}

// parseForm maps the config's form name to forward's.
func parseForm(name string) (forward.Form, error) {
	switch name {
	case "mixture":
		return forward.Mixture, nil
	case "proportional":
		return forward.Proportional, nil
	}
	return 0, fmt.Errorf("%q is not one of mixture|proportional", name)
}
