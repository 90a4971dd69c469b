package sampling

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// categorical draws one index per row of p [..., K] (weights ≥ 0, float64,
// need not sum to 1) as argmax(log p + g) with Gumbel noise
// g = −log(−log u), u ~ U[0,1) in float64. In float32, −log(−log u) cannot
// exceed about 16.6, so rare tokens are drawn less often than they should.
func categorical(p *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	u := s.T(ts.MustRand(p.MustSize(), gotch.Double, p.MustDevice()))
	g := s.T(s.T(s.T(s.T(u.MustLog(false)).MustNeg(false)).MustLog(false)).MustNeg(false))
	logp := s.T(s.T(p.MustTotype(gotch.Double, false)).MustLog(false))
	return s.T(logp.MustAdd(g, false)).MustArgmax([]int64{-1}, false, false)
}

// Top-p rules (sampling.top_p_rule): which tokens a nucleus of mass p keeps,
// the candidates sorted by probability.
const (
	// TopPDiffusion keeps a token while the cumulative mass up to and
	// including it is at most p, and always the most probable one: the
	// rule of MDLM's and ReMDM's code (cumsum > p is removed, the first
	// index restored).
	TopPDiffusion = "diffusion"
	// TopPHoltzman keeps a token while the mass before it is below p, so
	// the token that crosses p is kept: Holtzman et al. and Hugging Face's
	// TopPLogitsWarper.
	TopPHoltzman = "holtzman"
)

func topPRules() []string { return []string{TopPDiffusion, TopPHoltzman} }

// reshape applies a temperature and a top-p cut (by rule, "" meaning
// TopPDiffusion) to probabilities p [..., K] (float64) and renormalises.
// Temperature 1 and top-p 1 return a copy; temperature 0 puts all mass on
// the most probable index.
func reshape(p *ts.Tensor, temperature, topP float64, rule string) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	out := s.T(p.MustAddScalar(ts.FloatScalar(0), false))
	switch {
	case temperature == 0:
		best := s.T(out.MustArgmax([]int64{-1}, true, false))
		out = s.T(s.T(out.MustZerosLike(false)).MustScatterValue(-1, best, ts.FloatScalar(1), false))
	case temperature != 1:
		// p^(1/T), computed as exp((log p − max log p)/T) to stay finite.
		logp := s.T(out.MustLog(false))
		top := s.T(logp.MustAmax([]int64{-1}, true, false))
		out = s.T(s.T(s.T(logp.MustSub(top, false)).MustDivScalar(ts.FloatScalar(temperature), false)).MustExp(false))
	}
	if topP < 1 {
		out = s.T(nucleus(out, topP, rule))
	}
	return s.Keep(normalize(out))
}

// nucleus keeps, per row, the most probable indices by rule (see
// TopPDiffusion and TopPHoltzman; always at least the first) and zeroes
// the rest.
func nucleus(p *ts.Tensor, topP float64, rule string) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	total := s.T(p.MustSumDimIntlist([]int64{-1}, true, gotch.Double, false))
	sorted, idx := p.MustSort(-1, true, false)
	s.T(sorted)
	s.T(idx)
	limit := s.T(total.MustMulScalar(ts.FloatScalar(topP), false))
	upto := s.T(sorted.MustCumsum(-1, gotch.Double, false))
	var drop *ts.Tensor
	if rule == TopPHoltzman {
		before := s.T(upto.MustSub(sorted, false))
		drop = s.T(before.MustGeTensor(limit, false))
	} else {
		// cumsum > p·total, with the first index always kept (its cumsum
		// may exceed p on its own).
		over := s.T(upto.MustGtTensor(limit, false))
		first := s.T(s.T(over.MustZerosLike(false)).MustNarrow(-1, 0, 1, false))
		rest := s.T(over.MustNarrow(-1, 1, over.MustSize()[len(over.MustSize())-1]-1, false))
		drop = s.T(ts.MustCat([]*ts.Tensor{first, rest}, -1))
	}
	kept := s.T(sorted.MustMaskedFill(drop, ts.FloatScalar(0), false))
	return s.T(p.MustZerosLike(false)).MustScatter(-1, idx, kept, false)
}

// normalize divides the last dimension by its sum.
func normalize(p *ts.Tensor) *ts.Tensor {
	sum := p.MustSumDimIntlist([]int64{-1}, true, p.DType(), false)
	defer sum.MustDrop()
	return p.MustDiv(sum, false)
}
