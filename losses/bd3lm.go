package losses

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// bd3lm is BD3-LM's block diffusion objective (Arriola et al., 2025). The
// L tokens are cut into K = L/b blocks, and the likelihood factorises
// over them exactly,
//
//	−log p(x0) = Σ_k −log p(x0^k | x0^{<k}) ≤ Σ_k NELBO_k,
//
// each factor bounded by MDLM's continuous-time bound for that block alone,
// at the block's own time t_k:
//
//	NELBO_k = E_{t_k} [ −α'(t_k)/(1−α(t_k)) Σ_{i ∈ k: x_t^i = m} −log p̃(x0^i | x_t^k, x0^{<k}) ] + prior_k.
//
// The network (models.Spec.BlockSize = b) reads x_t ⊕ x_0 under the
// block-diffusion mask (models.BlockDiffMask), so one pass computes every
// block's conditional. With b = L this is MDLM; with b = 1 each block is
// one token, its prediction sees only the clean tokens before it, and the
// bound's expectation is (1−α₁)·(the next-token NLL) + the prior.
//
// Block times are stratified within a sequence: t_k = (u + k/K) mod 1 for
// the sequence's draw u, so each t_k is uniform (the estimate is unbiased,
// block by block) and one draw per sequence still serves the evaluation's
// quadrature over u. BD3-LM's code draws the K times independently; the
// expectation is the same, the variance no higher. Training may clip the
// times to BD3-LM's window [β, ω] (objective.clip_min/clip_max); NELBO
// never does.
type bd3lm struct {
	base
	proc  forward.Process // absorbing: the mask is state V
	block int             // b
	clip  [2]float64      // training window [β, ω]
}

func (d *bd3lm) maskID() int64 { return int64(d.proc.Vocab()) }

// blocks is K for sequences of length l.
func (d *bd3lm) blocks(l int64) (int, error) {
	if l%int64(d.block) != 0 {
		return 0, fmt.Errorf("sequence length %d is not a multiple of objective.block_size %d", l, d.block)
	}
	return int(l) / d.block, nil
}

// times keeps one draw per sequence: blockTimes expands it once the
// sequence length is known.
func (d *bd3lm) times(u []float64) []float64 { return u }

// blockTimes is t [B·K] (row-major) for the sequences' draws t [B]; while
// training, mapped into the clipped window.
func (d *bd3lm) blockTimes(t []float64, K int, train bool) []float64 {
	lo, hi := 0.0, 1.0
	if train {
		lo, hi = d.clip[0], d.clip[1]
	}
	out := make([]float64, 0, len(t)*K)
	for _, u := range t {
		for k := range K {
			out = append(out, lo+(hi-lo)*math.Mod(u+float64(k)/float64(K), 1))
		}
	}
	return out
}

// perToken spreads one value per block over its b tokens: [B, L].
func (d *bd3lm) perToken(vals []float64, B, K int, dtype gotch.DType, dev gotch.Device) *ts.Tensor {
	out := make([]float64, 0, B*K*d.block)
	for _, v := range vals {
		for range d.block {
			out = append(out, v)
		}
	}
	return ts.MustOfSlice(out).MustView([]int64{int64(B), int64(K * d.block)}, true).MustTotype(dtype, true).MustTo(dev, true)
}

// noise masks each token of block k with probability 1−α(t_k), with the
// same draw from torch's generator as the absorbing process's Sample (so
// b = L gives MDLM's x_t exactly).
func (d *bd3lm) noise(x0 *ts.Tensor, t []float64, train bool) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := x0.MustSize()
	K, err := d.blocks(size[1])
	if err != nil {
		// The data pipeline's seq_len is checked against block_size when
		// a run is configured; this is a caller's programming error.
		panic(fmt.Errorf("bd3lm: %w", err))
	}
	sched := d.proc.Schedule()
	tk := d.blockTimes(t, K, train)
	p := make([]float64, len(tk))
	for i, v := range tk {
		p[i] = -math.Expm1(-sched.Sigma(v))
	}
	u := s.T(ts.MustRand(size, gotch.Double, x0.MustDevice()))
	pMask := s.T(d.perToken(p, int(size[0]), K, gotch.Double, x0.MustDevice()))
	masked := s.T(u.MustLtTensor(pMask, false))
	return x0.MustMaskedFill(masked, ts.IntScalar(d.maskID()), false)
}

// weight is MDLM's continuous-time factor −α'/(1−α) = σ'/(e^σ − 1);
// 0 where σ = 0.
func (d *bd3lm) weight(t float64) float64 {
	sched := d.proc.Schedule()
	sigma := sched.Sigma(t)
	if sigma <= 0 {
		return 0
	}
	return sched.DSigma(t) / math.Expm1(sigma)
}

// logits is the network's clean-token logits [B,L,V] for the noisy half
// of x_t ⊕ clean.
func (d *bd3lm) logits(net Net, xt, clean *ts.Tensor, train bool) (*ts.Tensor, error) {
	s := torchx.NewScope()
	defer s.Close()
	size := xt.MustSize()
	B, L := size[0], size[1]
	if _, err := d.blocks(L); err != nil {
		return nil, err
	}
	full := s.T(net.Forward(s.T(ts.MustCat([]*ts.Tensor{xt, clean}, 1)), nil, train))
	if err := checkLogits(full, B, 2*L, d.proc.Vocab()); err != nil {
		return nil, fmt.Errorf("%w (a BD3-LM network returns logits for x_t ⊕ x_0)", err)
	}
	return full.MustNarrow(1, 0, L, false), nil
}

// LogX0 is SUBS's log p̃(x0|x_t) [B,L,V] with x_t itself as the clean
// copy: each block is denoised given the blocks before it as they stand in
// x_t, which is BD3-LM's conditional exactly when those blocks are fully
// decoded — as in block-by-block sampling (sampler block with block_len =
// b) and in LAMBADA's clean context. sigma is ignored (no time input).
func (d *bd3lm) LogX0(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error) {
	logits, err := d.logits(net, xt, xt, false)
	if err != nil {
		return nil, err
	}
	defer logits.MustDrop()
	return subs(logits, xt, d.proc.Vocab()), nil
}

func (d *bd3lm) terms(net Net, x0, xt, weights *ts.Tensor, t []float64, train bool) (terms, error) {
	s := torchx.NewScope()
	defer s.Close()
	size := xt.MustSize()
	B, L := size[0], size[1]
	K, err := d.blocks(L)
	if err != nil {
		return terms{}, err
	}
	tk := d.blockTimes(t, K, train)
	w := make([]float64, len(tk))
	for i, v := range tk {
		w[i] = d.weight(v)
	}
	var cost, sum *ts.Tensor
	if rn, ok := net.(rowNet); ok {
		in := s.T(ts.MustCat([]*ts.Tensor{xt, x0}, 1))
		c, cs, err := maskedCost(rn, in, x0, xt, weights, d.maskID(), func(dtype gotch.DType, dev gotch.Device) *ts.Tensor {
			return d.perToken(w, int(B), K, dtype, dev)
		}, d.proc.Vocab(), d.ceChunk, train)
		if err != nil {
			return terms{}, err
		}
		cost, sum = s.T(c), cs
		if sum != nil {
			s.T(sum)
		}
	} else {
		logits, err := d.logits(net, xt, x0, train)
		if err != nil {
			return terms{}, err
		}
		s.T(logits)
		dtype, dev := logits.DType(), logits.MustDevice()
		masked := s.T(s.T(xt.MustEq(ts.IntScalar(d.maskID()), false)).MustTotype(dtype, false))
		cost = s.T(s.T(s.T(nll(logits, x0)).MustMul(masked, false)).MustMul(s.T(d.perToken(w, int(B), K, dtype, dev)), false))
	}
	prior := d.proc.PriorKL(x0).MustTotype(cost.DType(), true)
	return terms{bound: cost.MustAdd(prior, false), prior: prior, sum: plusPrior(sum, prior, weights)}, nil
}
