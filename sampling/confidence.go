package sampling

import (
	"context"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// confidence is LLaDA's confidence-ordered unmasking for absorbing
// networks: at each step every masked position proposes a token drawn from
// p̃ (after temperature and top-p), and only the k most confident proposals
// (highest p̃ of the drawn token, before reshaping) are kept; the others stay masked. With r masked positions and i steps
// left, k = ⌈r/i⌉, so the sequence is complete after the last step. Unlike
// the ancestral sampler the order is chosen by the model, not at random.
//
// With a threshold τ > 0 (Fast-dLLM's parallel decoding) every proposal
// with p̃ > τ is kept as well, so confident stretches are decoded in one
// step and the chain may finish — and stop calling the network — before
// its T steps.
type confidence struct {
	proc      forward.Process
	model     losses.Net
	den       losses.Denoiser
	threshold float64
}

// A time-conditioned network is told σ = −log(1 − r/L) for r masked of L
// positions (forward.SigmaForFraction): the noise level whose expected mask
// fraction is the one it sees, since the number unmasked per step is the
// sampler's choice, not the schedule's.
func (f *confidence) sample(ctx context.Context, c *chain) error {
	net := c.model(f.model)
	sched := f.proc.Schedule()
	c.start(initial(f.proc, c))
	m := int64(f.proc.Vocab())
	for i := c.steps; i >= 1; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		masked := c.x.MustEq(ts.IntScalar(m), false)
		idx := rows(masked)
		if idx == nil { // all decided: nothing left to unmask
			masked.MustDrop()
			c.set(c.x.MustAddScalar(ts.IntScalar(0), false))
			continue
		}
		logp, err := f.den.LogX0(net, c.x, maskSigmas(sched, masked, c.l))
		if err != nil {
			masked.MustDrop()
			idx.MustDrop()
			return err
		}
		c.set(f.unmask(c, logp, masked, idx, i))
		for _, t := range []*ts.Tensor{logp, masked, idx} {
			t.MustDrop()
		}
	}
	return nil
}

// unmask proposes tokens at the masked positions idx and keeps the ⌈r/i⌉
// most confident of each sequence.
func (f *confidence) unmask(c *chain, logp, masked, idx *ts.Tensor, i int) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	p0 := s.T(cleanAt(logp, idx))
	tok := s.T(categorical(s.T(c.adjust(p0))))
	conf := s.T(p0.MustGather(-1, s.T(tok.MustUnsqueeze(-1, false)), false, false))
	proposed := s.T(put(c.x, idx, tok))
	// Rank the masked positions by confidence (0 = most confident); the
	// others sort last with confidence −1.
	none := s.T(ts.MustFull([]int64{c.b, c.l}, ts.FloatScalar(-1), gotch.Double, c.device))
	order := s.T(s.T(put(none, idx, conf)).MustArgsort(-1, true, false))
	pos := s.T(s.T(ts.MustArange(ts.IntScalar(c.l), gotch.Int64, c.device)).MustExpand([]int64{c.b, c.l}, false, false))
	rank := s.T(s.T(order.MustZerosLike(false)).MustScatter(-1, order, pos, false))
	chosen := s.T(rank.MustLtTensor(s.T(quota(masked, i, c.device)), false))
	if f.threshold > 0 {
		sure := s.T(s.T(put(none, idx, conf)).MustGt(ts.FloatScalar(f.threshold), false))
		chosen = s.T(chosen.MustLogicalOr(sure, false))
	}
	keep := s.T(masked.MustLogicalAnd(chosen, false))
	return proposed.MustWhereSelf(keep, c.x, false)
}

// maskSigmas is forward.SigmaForFraction of each row's masked share.
func maskSigmas(sched forward.Schedule, masked *ts.Tensor, l int64) []float64 {
	r := masked.MustSumDimIntlist([]int64{-1}, false, gotch.Int64, false).MustTo(gotch.CPU, true).Int64Values(true)
	out := make([]float64, len(r))
	for i, n := range r {
		out[i] = forward.SigmaForFraction(sched, float64(n)/float64(l))
	}
	return out
}

// quota is ⌈r/steps⌉ per sequence as [B,1] int64, r its masked positions.
func quota(masked *ts.Tensor, steps int, device gotch.Device) *ts.Tensor {
	r := masked.MustSumDimIntlist([]int64{-1}, false, gotch.Int64, false).MustTo(gotch.CPU, true).Int64Values(true)
	k := make([]int64, len(r))
	for i, n := range r {
		k[i] = (n + int64(steps) - 1) / int64(steps)
	}
	return ts.MustOfSlice(k).MustView([]int64{int64(len(k)), 1}, true).MustTo(device, true)
}
