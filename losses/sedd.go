package losses

import (
	"math"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// sedd is SEDD's denoising score entropy for any process. The network
// outputs log-scores log s_y ≈ log p_t(y)/p_t(x_t) for every state y; for a
// position holding x_t, summed over the states y that jump into x_t at
// forward rate w_y = R[y,x_t],
//
//	ℓ = Σ_y w_y·[s_y − r_y·log s_y + K(r_y)],  r_y = q_t(y|x0)/q_t(x_t|x0),  K(a) = a(log a − 1),
//
// and −log p(x0) ≤ ∫₀¹ σ'(t)·E[Σ_i ℓ_i] dt + KL(q_1(·|x0) ‖ π). K makes
// ℓ ≥ 0 with equality exactly when s = r. Absorbing: only masked positions
// count, w = 1 for every real y, r_y = [y = x0]/(e^σ−1). Uniform: w = 1/V
// for y ≠ x_t. Embedding: w = A[y,x_t] over the neighbours, r from single
// eigen-form entries. The network takes σ(t) as its time input.
type sedd struct {
	base
	proc forward.Process
}

func (e *sedd) times(u []float64) []float64 { return u }

func (e *sedd) noise(x0 *ts.Tensor, t []float64, _ bool) *ts.Tensor {
	return e.proc.Sample(x0, sigmas(e.proc.Schedule(), t))
}

func (e *sedd) terms(net Net, x0, xt, _ *ts.Tensor, t []float64, train bool) (terms, error) {
	s := torchx.NewScope()
	defer s.Close()
	sched := e.proc.Schedule()
	sigma := sigmas(sched, t)
	logS, err := e.logScores(net, xt, sigma, train)
	if err != nil {
		return terms{}, err
	}
	s.T(logS)
	dtype, dev := logS.DType(), logS.MustDevice()
	// Ratios r_y and K(r_y) are computed in the logits' dtype: float32 in
	// training (r ≤ 1/tiny stays finite), float64 in the exactness tests.
	from, rate := e.proc.JumpsInto(xt, dtype)
	s.T(rate)
	var num *ts.Tensor
	if from == nil {
		num = s.T(e.proc.Row(x0, sigma, dtype))
	} else {
		s.T(from)
		logS = s.T(logS.MustGather(-1, from, false, false))
		num = s.T(e.proc.Entries(x0, from, sigma, dtype))
	}
	den := s.T(e.proc.Entries(x0, s.T(xt.MustUnsqueeze(-1, false)), sigma, dtype))
	r := s.T(num.MustDiv(s.T(den.MustClampMin(ts.FloatScalar(tiny), false)), false))
	// Slots that no state jumps from get log-score 0 before exp, so that
	// neither their values nor their gradients can become Inf or NaN;
	// everything else there is finite and multiplied by rate = 0.
	inactive := s.T(rate.MustLe(ts.FloatScalar(0), false))
	logS = s.T(logS.MustMaskedFill(inactive, ts.FloatScalar(0), false))
	k := s.T(r.MustMul(s.T(s.T(s.T(r.MustClampMin(ts.FloatScalar(tiny), false)).MustLog(false)).MustSubScalar(ts.FloatScalar(1), false)), false))
	pos := s.T(s.T(s.T(logS.MustExp(false)).MustSub(s.T(r.MustMul(logS, false)), false)).MustAdd(k, false))
	ell := s.T(s.T(pos.MustMul(rate, false)).MustSumDimIntlist([]int64{-1}, false, dtype, false))
	dsig := make([]float64, len(t))
	for b, tb := range t {
		dsig[b] = sched.DSigma(tb)
	}
	cost := s.T(ell.MustMul(s.T(perSeq(dsig, dtype, dev)), false))
	prior := e.proc.PriorKL(x0).MustTotype(dtype, true)
	return terms{bound: cost.MustAdd(prior, false), prior: prior}, nil
}

// LogScores is the network's log-scores [B,L,N] at noise levels sigma.
func (e *sedd) LogScores(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error) {
	return e.logScores(net, xt, sigma, false)
}

// minShiftSigma keeps the absorbing shift finite at σ = 0, where no
// position is masked and the shifted scores are not used.
const minShiftSigma = 1e-12

func (e *sedd) logScores(net Net, xt *ts.Tensor, sigma []float64, train bool) (*ts.Tensor, error) {
	s := torchx.NewScope()
	defer s.Close()
	size := xt.MustSize()
	out := s.T(net.Forward(xt, s.T(netSigma(sigma, xt.MustDevice())), train))
	if err := checkLogits(out, size[0], size[1], e.proc.NumStates()); err != nil {
		return nil, err
	}
	if e.proc.Name() == "absorbing" {
		// SEDD's shift: a score for a masked position is
		// p(x0=y|·)/(e^σ−1), so an untrained net that outputs ≈ 0 starts
		// at the scale of a uniform guess over the V real tokens. (SEDD's
		// code subtracts log(dim−1) with dim = V+1 states.)
		shift := make([]float64, len(sigma))
		for b, sg := range sigma {
			shift[b] = -math.Log(math.Expm1(max(sg, minShiftSigma))) - math.Log(float64(e.proc.Vocab()))
		}
		sh := s.T(s.T(perSeq(shift, out.DType(), out.MustDevice())).MustUnsqueeze(-1, false))
		out = s.T(out.MustAdd(sh, false))
	}
	// The score of x_t relative to itself is 1.
	zeros := s.T(ts.MustZeros([]int64{size[0], size[1], 1}, out.DType(), out.MustDevice()))
	return out.MustScatter(-1, s.T(xt.MustUnsqueeze(-1, false)), zeros, false), nil
}
