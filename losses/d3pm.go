package losses

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// d3pm is D3PM's discrete-time bound for any process, on the grid
// t_i = i/T with σ_0 = 0 (the chain starts at the data):
//
//	NELBO = Σ_{i≥2} E KL(q(x_{i−1}|x_i,x0) ‖ p_θ(x_{i−1}|x_i)) + E[−log p_θ(x0|x_1)] + KL(q(x_T|x0) ‖ π),
//
// with q and p_θ (in the configured form) from forward.Posteriors, which
// shares the one-step column between them. The i = 1 term needs no special case: q(x_0|x_1,x0) is
// the point mass on x0, so its KL is −log p_θ(x0|x_1). One step is sampled
// per sequence and its term multiplied by T; the hybrid loss adds
// λ·CE(p̃(x0|x_i), x0) over all positions (λ = 0.01 in D3PM's text runs).
// The network takes σ(t_i).
type d3pm struct {
	base
	proc  forward.Process
	steps int
	form  forward.Form
}

func (d *d3pm) times(u []float64) []float64 { return snap(u, d.steps) }

// Form is the form of p_θ(x_s|x_t) the bound was trained with
// (objective.d3pm_form): a sampler must follow the same reverse chain,
// since the two forms' optimal p̃ differ.
func (d *d3pm) Form() forward.Form { return d.form }

func (d *d3pm) noise(x0 *ts.Tensor, t []float64, _ bool) *ts.Tensor {
	return d.proc.Sample(x0, sigmas(d.proc.Schedule(), t))
}

func (d *d3pm) terms(net Net, x0, xt, _ *ts.Tensor, t []float64, train bool) (terms, error) {
	s := torchx.NewScope()
	defer s.Close()
	sched := d.proc.Schedule()
	sigT := sigmas(sched, t)
	sigS := make([]float64, len(t))
	for b, tb := range t {
		if i := step(tb, d.steps); i > 1 {
			sigS[b] = sched.Sigma(float64(i-1) / float64(d.steps))
		}
	}
	logp, err := d.logX0(net, xt, sigT, train)
	if err != nil {
		return terms{}, err
	}
	s.T(logp)
	dtype := logp.DType()
	q, p := forward.Posteriors(d.proc, x0, s.T(logp.MustExp(false)), xt, sigS, sigT, d.form)
	s.T(q)
	s.T(p)
	kl := s.T(klRows(q, p))
	scaled := s.T(kl.MustMulScalar(ts.FloatScalar(float64(d.steps)), false))
	prior := d.proc.PriorKL(x0).MustTotype(dtype, true)
	ce := s.T(gatherLast(logp, x0)).MustNeg(false)
	return terms{bound: scaled.MustAdd(prior, false), prior: prior, ce: ce}, nil
}

// klRows is Σ_y q_y·(log q_y − log p_y) over the last dimension, with
// q_y = 0 contributing 0 and p floored before the log.
func klRows(q, p *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	logQ := s.T(s.T(q.MustClampMin(ts.FloatScalar(tiny), false)).MustLog(false))
	logP := s.T(s.T(p.MustClampMin(ts.FloatScalar(tiny), false)).MustLog(false))
	return s.T(q.MustMul(s.T(logQ.MustSub(logP, false)), false)).MustSumDimIntlist([]int64{-1}, false, q.DType(), false)
}

// tiny floors probabilities before a log.
const tiny = 1e-30

// LogX0 is the network's log p̃(x0|x_t) [B,L,V] at noise levels sigma.
func (d *d3pm) LogX0(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error) {
	return d.logX0(net, xt, sigma, false)
}

func (d *d3pm) logX0(net Net, xt *ts.Tensor, sigma []float64, train bool) (*ts.Tensor, error) {
	s := torchx.NewScope()
	defer s.Close()
	size := xt.MustSize()
	logits := s.T(net.Forward(xt, s.T(netSigma(sigma, xt.MustDevice())), train))
	if err := checkLogits(logits, size[0], size[1], d.proc.Vocab()); err != nil {
		return nil, err
	}
	return logits.MustLogSoftmax(-1, logits.DType(), false), nil
}

// TermTotals splits the bound into its three parts, each summed over the
// weighted tokens of x0, and returns the weight total:
//
//	prior      KL(q(x_T|x0) ‖ π), exact;
//	recon      the decoder −log p_θ(x0|x_1), every sequence at t_1 (one
//	           draw of x_1);
//	diffusion  Σ_{i≥2} KL(q(x_{i−1}|x_i,x0) ‖ p_θ(x_{i−1}|x_i)), one step
//	           per sequence, i = 2 + ⌊u·(T−1)⌋, weighted by T − 1.
//
// The decoder is apart because D3PM takes p̃ itself for p_θ(x0|x_1): a
// network that has not yet learned to copy the tokens it sees pays for
// every one of them there, a cost one step in T of the sampled bound
// carries with weight T (a heavy tail the split shows as one number).
func (d *d3pm) TermTotals(net Net, x0, weights *ts.Tensor, u []float64) (map[string]float64, float64, error) {
	if err := checkBatch(x0, weights); err != nil {
		return nil, 0, fmt.Errorf("d3pm terms: %w", err)
	}
	T := float64(d.steps)
	first := make([]float64, len(u))
	later := make([]float64, len(u))
	for b, v := range u {
		first[b] = 1 / T
		later[b] = float64(2+min(int(v*(T-1)), d.steps-2)) / T
	}
	out := map[string]float64{TermPrior: 0, TermRecon: 0, TermDiffusion: 0}
	var tokens float64
	var err error
	torchx.NoGrad(func() {
		s := torchx.NewScope()
		defer s.Close()
		// at is Σ w·KL at times t, the KL recovered from the bound as
		// (bound − prior)/T; it also sets the prior and the weight total.
		at := func(t []float64) float64 {
			if err != nil {
				return 0
			}
			tr, e := d.terms(net, x0, s.T(d.noise(x0, t, false)), nil, t, false)
			if e != nil {
				err = e
				return 0
			}
			defer tr.drop()
			w := s.T(weightsLike(weights, tr.prior))
			out[TermPrior] = total(s, tr.prior, w)
			tokens = total(s, w, nil)
			return (total(s, tr.bound, w) - out[TermPrior]) / T
		}
		out[TermRecon] = at(first)
		if d.steps > 1 {
			out[TermDiffusion] = (T - 1) * at(later)
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("d3pm terms: %w", err)
	}
	return out, tokens, nil
}
