// Package losses holds the training objectives and evaluation bounds of
// the comparison: MDLM's continuous- and finite-time ELBO, D3PM's
// discrete-time hybrid loss, SEDD's score entropy, and the autoregressive
// NLL. Every objective computes per-token contributions to an upper bound
// on −log p(x0) (nats) in one code path: Loss averages them for training,
// NELBO sums them per sequence for evaluation, so the two always agree.
package losses

import (
	"fmt"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// Net is what an objective needs of the network: logits [B,L,VocabOut]
// (float32) for token ids x [B,L] (int64) and, for time-conditioned
// methods, noise levels sigma [B] (float32; nil otherwise). The objectives
// compute in the dtype of the logits, so a float64 net gets float64 bounds.
type Net interface {
	Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor
}

// NetSpec says what network a (process, objective) pair needs; see SpecFor.
type NetSpec struct {
	VocabIn, VocabOut int
	Causal, TimeCond  bool
	BlockSize         int // > 0: a BD3-LM network over x_t ⊕ x_0 (models.Spec.BlockSize)
	EmbedDim          int // > 0: an embed-and-diffuse network (models.Spec.EmbedDim)
}

// Stats summarises one Loss call, per token (weighted by the loss weights).
type Stats struct {
	// Tokens is the sum of the weights.
	Tokens float64
	// NELBO is the bound estimate in nats per token, prior term included.
	NELBO float64
	// Prior is the prior term's share of NELBO.
	Prior float64
	// CE is the hybrid cross-entropy −log p̃(x0|x_t) (d3pm; else 0).
	CE float64
}

// Objective is a training loss and its evaluation bound. Callers must be
// on a torchx.Lock'ed thread.
type Objective interface {
	// Name is mdlm, d3pm, sedd, bd3lm, vdm or ar.
	Name() string
	// Spec is the network this objective needs.
	Spec() NetSpec
	// Loss draws one time per sequence and the noise with torch's
	// generator (the trainer seeds it per step) and returns the scalar to
	// minimise: Σ w·(bound + λ·CE)/Σ w over tokens. weights [B,L] (nil =
	// all ones) masks padding out of the loss.
	Loss(net Net, x0, weights *ts.Tensor) (*ts.Tensor, Stats, error)
	// NELBO is the bound per sequence in nats, Σ_l w·bound, estimated at
	// the uniform draws u (one per sequence, in [0,1]; ignored by ar, where
	// it is exact). Discrete-time objectives map u to step ⌊uT⌋+1, so
	// u = (i−½)/T for i = 1..T averages to the exact sum over steps. It
	// runs without gradients and with the network in eval mode.
	NELBO(net Net, x0, weights *ts.Tensor, u []float64) ([]float64, error)
}

// Denoiser is implemented by objectives whose network predicts clean
// tokens (mdlm, d3pm): log p̃(x0|x_t) [B,L,V] for ancestral samplers, which
// turn it into a reverse step with forward.ModelPosterior.
type Denoiser interface {
	LogX0(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error)
}

// Scorer is implemented by sedd: log-scores log s(x_t)_y ≈
// log p_t(y)/p_t(x_t) [B,L,N] for every state y, with the absorbing shift
// applied and the score of x_t itself set to 1 (log 0). Euler samplers jump
// from x_t to y at rate R[y,x_t]·s_y (forward.Process.JumpsInto gives R).
type Scorer interface {
	LogScores(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error)
}

// New builds the configured objective over V real tokens; proc is nil for
// ar and must be the process the other objectives are paired with.
func New(cfg Config, proc forward.Process, V int) (Objective, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	procName := "none"
	if proc != nil {
		procName = proc.Name()
		if proc.Vocab() != V {
			return nil, fmt.Errorf("objective: process over V=%d tokens, data vocabulary V=%d", proc.Vocab(), V)
		}
	}
	spec, err := SpecFor(procName, cfg.Name, V)
	if err != nil {
		return nil, err
	}
	b := base{name: cfg.Name, spec: spec, antithetic: cfg.TSampling == "antithetic", ceChunk: cfg.CEChunk}
	switch cfg.Name {
	case "mdlm":
		m := &mdlm{base: b, proc: proc, steps: cfg.Steps}
		m.m = m
		return m, nil
	case "d3pm":
		form := forward.Proportional
		if cfg.D3PMForm == "mixture" {
			form = forward.Mixture
		}
		d := &d3pm{base: b, proc: proc, steps: cfg.Steps, form: form}
		d.lambda = cfg.HybridLambda
		d.m = d
		return d, nil
	case "sedd":
		s := &sedd{base: b, proc: proc}
		s.m = s
		return s, nil
	case "vdm":
		return nil, fmt.Errorf("objective vdm is built from the gaussian process by NewVDM")
	case "bd3lm":
		b.spec.BlockSize = cfg.BlockSize
		clip := [2]float64{cfg.ClipMin, cfg.ClipMax}
		if clip == [2]float64{} {
			clip[1] = 1
		}
		d := &bd3lm{base: b, proc: proc, block: cfg.BlockSize, clip: clip}
		d.m = d
		return d, nil
	}
	a := &ar{base: b, v: V}
	a.m = a
	return a, nil
}

// method is what differs between objectives; base turns it into Loss and
// NELBO.
type method interface {
	// times maps uniform draws to the times x_t is drawn at
	// (discrete-time objectives snap them to their grid).
	times(u []float64) []float64
	// noise draws x_t at those times; train is true in Loss, false in
	// NELBO (bd3lm clips its training times).
	noise(x0 *ts.Tensor, t []float64, train bool) *ts.Tensor
	// terms are the per-token contributions at (x0, x_t, t). weights
	// are the loss weights [B,L] (nil: all ones), which only a method that
	// sums its own training loss (terms.sum) needs.
	terms(net Net, x0, xt, weights *ts.Tensor, t []float64, train bool) (terms, error)
}

// terms are per-token [B,L] tensors in the logits' dtype.
type terms struct {
	bound *ts.Tensor // contribution to the NELBO estimate, prior included
	prior *ts.Tensor // the prior term (no gradient)
	ce    *ts.Tensor // hybrid cross-entropy, nil unless d3pm
	train *ts.Tensor // what Loss minimises instead of bound (+λ·ce); nil: the bound
	// sum is Σ weights·bound, a scalar carrying the bound's gradient, when
	// the method computed that gradient itself (chunked cross-entropy:
	// bound then has none); nil: Loss sums bound.
	sum *ts.Tensor
}

func (t terms) drop() {
	for _, x := range []*ts.Tensor{t.bound, t.prior, t.ce, t.train, t.sum} {
		if x != nil {
			x.MustDrop()
		}
	}
}

// base holds what all objectives share.
type base struct {
	ceChunk    int // rows per chunk of the chunked cross-entropy (objective.ce_chunk); 0: the full logits
	name       string
	spec       NetSpec
	lambda     float64
	antithetic bool
	m          method
}

func (b *base) Name() string  { return b.name }
func (b *base) Spec() NetSpec { return b.spec }

func (b *base) Loss(net Net, x0, weights *ts.Tensor) (*ts.Tensor, Stats, error) {
	if err := checkBatch(x0, weights); err != nil {
		return nil, Stats{}, fmt.Errorf("%s loss: %w", b.name, err)
	}
	s := torchx.NewScope()
	defer s.Close()
	t := b.m.times(b.draw(x0.MustSize()[0]))
	xt := s.T(b.m.noise(x0, t, true))
	tr, err := b.m.terms(net, x0, xt, weights, t, true)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%s loss: %w", b.name, err)
	}
	defer tr.drop()
	w := s.T(weightsLike(weights, tr.bound))
	total := s.T(w.MustSum(tr.bound.DType(), false))
	sum := func(x *ts.Tensor) *ts.Tensor { return s.T(s.T(x.MustMul(w, false)).MustSum(x.DType(), false)) }
	obj := tr.sum
	if obj == nil {
		obj = sum(tr.bound)
	}
	if tr.train != nil {
		obj = sum(tr.train)
	}
	if tr.ce != nil && b.lambda > 0 {
		obj = s.T(obj.MustAdd(s.T(sum(tr.ce).MustMulScalar(ts.FloatScalar(b.lambda), false)), false))
	}
	loss := obj.MustDiv(total, false)
	st := Stats{Tokens: scalar(total)}
	var vals []float64
	torchx.NoGrad(func() {
		vals = []float64{scalar(sum(tr.bound)), scalar(sum(tr.prior))}
		if tr.ce != nil {
			vals = append(vals, scalar(sum(tr.ce)))
		}
	})
	st.NELBO, st.Prior = vals[0]/st.Tokens, vals[1]/st.Tokens
	if len(vals) > 2 {
		st.CE = vals[2] / st.Tokens
	}
	return loss, st, nil
}

func (b *base) NELBO(net Net, x0, weights *ts.Tensor, u []float64) ([]float64, error) {
	if err := checkBatch(x0, weights); err != nil {
		return nil, fmt.Errorf("%s nelbo: %w", b.name, err)
	}
	nb := x0.MustSize()[0]
	if b.name != "ar" && int64(len(u)) != nb {
		return nil, fmt.Errorf("%s nelbo: %d draws for a batch of %d sequences", b.name, len(u), nb)
	}
	var out []float64
	var err error
	torchx.NoGrad(func() {
		s := torchx.NewScope()
		defer s.Close()
		t := b.m.times(u)
		xt := s.T(b.m.noise(x0, t, false))
		var tr terms
		if tr, err = b.m.terms(net, x0, xt, weights, t, false); err != nil {
			return
		}
		defer tr.drop()
		w := s.T(weightsLike(weights, tr.bound))
		per := s.T(s.T(tr.bound.MustMul(w, false)).MustSumDimIntlist([]int64{1}, false, gotch.Double, false))
		out = values(per)
	})
	if err != nil {
		return nil, fmt.Errorf("%s nelbo: %w", b.name, err)
	}
	return out, nil
}

// draw is one uniform time per sequence from torch's generator: i.i.d., or
// antithetic t_b = (u + b/B) mod 1.
func (b *base) draw(n int64) []float64 {
	if !b.antithetic {
		r := ts.MustRand([]int64{n}, gotch.Double, gotch.CPU)
		defer r.MustDrop()
		return values(r)
	}
	r := ts.MustRand([]int64{1}, gotch.Double, gotch.CPU)
	defer r.MustDrop()
	u := values(r)[0]
	out := make([]float64, n)
	for i := range out {
		out[i] = math.Mod(u+float64(i)/float64(n), 1)
	}
	return out
}

// checkBatch checks x0 [B,L] int64 and weights [B,L] or nil.
func checkBatch(x0, weights *ts.Tensor) error {
	size := x0.MustSize()
	if len(size) != 2 || x0.DType() != gotch.Int64 {
		return fmt.Errorf("x0 of shape %v and dtype %v, want [B,L] int64", size, x0.DType())
	}
	if weights != nil && !slices.Equal(weights.MustSize(), size) {
		return fmt.Errorf("weights of shape %v for x0 of shape %v", weights.MustSize(), size)
	}
	return nil
}

// checkLogits checks the network's output shape.
func checkLogits(logits *ts.Tensor, b, l int64, vocab int) error {
	if want := []int64{b, l, int64(vocab)}; !slices.Equal(logits.MustSize(), want) {
		return fmt.Errorf("network returned logits of shape %v, want %v", logits.MustSize(), want)
	}
	return nil
}

// weightsLike is weights in like's dtype, or ones.
func weightsLike(weights, like *ts.Tensor) *ts.Tensor {
	if weights == nil {
		return like.MustOnesLike(false)
	}
	return weights.MustTotype(like.DType(), false).MustTo(like.MustDevice(), true)
}

func scalar(t *ts.Tensor) float64 { return values(t)[0] }

// total is Σ x·w over every element, in float64 (w nil: Σ x): the term
// totals of TermTotals.
func total(s *torchx.Scope, x, w *ts.Tensor) float64 {
	if w != nil {
		x = s.T(x.MustMul(w, false))
	}
	return scalar(s.T(x.MustSum(gotch.Double, false)))
}

// values copies a tensor to Go as float64 and frees the copies it makes
// (gotch's Float64Values leaves one to the garbage collector).
func values(t *ts.Tensor) []float64 {
	c := t.MustTo(gotch.CPU, false).MustTotype(gotch.Double, true).MustContiguous(true)
	defer c.MustDrop()
	out := make([]float64, c.Numel())
	c.MustCopyData(out, c.Numel())
	return out
}

// sigmas is σ(t) for each time.
func sigmas(sched forward.Schedule, t []float64) []float64 {
	out := make([]float64, len(t))
	for i, v := range t {
		out[i] = sched.Sigma(v)
	}
	return out
}

// netSigma is σ as the network's float32 [B] time input.
func netSigma(sigma []float64, device gotch.Device) *ts.Tensor {
	return ts.MustOfSlice(sigma).MustTotype(gotch.Float, true).MustTo(device, true)
}

// perSeq is one value per sequence as [B,1] in dtype, broadcasting over L.
func perSeq(vals []float64, dtype gotch.DType, device gotch.Device) *ts.Tensor {
	return ts.MustOfSlice(vals).MustView([]int64{int64(len(vals)), 1}, true).MustTotype(dtype, true).MustTo(device, true)
}

// gatherLast is x[..., idx] for idx [B,L]: [B,L].
func gatherLast(x, idx *ts.Tensor) *ts.Tensor {
	i := idx.MustUnsqueeze(-1, false)
	defer i.MustDrop()
	return x.MustGather(-1, i, false, false).MustSqueezeDim(-1, true)
}

// nll is −log softmax(logits)[x] for x [B,L]: logsumexp minus the picked
// logit, without materialising the log-softmax.
func nll(logits, x *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	lse := s.T(logits.MustLogsumexp([]int64{-1}, false, false))
	return lse.MustSub(s.T(gatherLast(logits, x)), false)
}

// snap maps uniform draws to step times i/T with i = ⌊uT⌋+1 ∈ 1..T.
func snap(u []float64, steps int) []float64 {
	out := make([]float64, len(u))
	for b, v := range u {
		i := min(int(v*float64(steps))+1, steps)
		out[b] = float64(i) / float64(steps)
	}
	return out
}

// step recovers i from a snapped time.
func step(t float64, steps int) int { return int(math.Round(t * float64(steps))) }
