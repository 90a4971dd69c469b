package losses

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// mdlm is MDLM's bound for the absorbing process with the SUBS
// parameterisation: the network never predicts the mask (VocabOut = V) and
// unmasked positions copy their token, so only masked positions cost
// anything. In continuous time
//
//	NELBO(x0) = ∫₀¹ (−α'(t)/(1−α(t)))·E[Σ_{i: x_t^i = m} −log p̃(x0^i|x_t)] dt + prior,
//
// with −α'/(1−α) = σ'/(e^σ−1) (≈ 1/t for log-linear). With T steps the
// same derivation weighs step i (t_i = i/T) by (α_{i−1}−α_i)/(1−α_i); this
// is exactly D3PM's bound for absorbing, whose KL terms reduce to it. The
// network takes no time input: it sees the mask fraction.
type mdlm struct {
	base
	proc  forward.Process // absorbing: the mask is state V
	steps int             // 0 = continuous time
}

// maskID is the absorbing process's mask state, V.
func (m *mdlm) maskID() int64 { return int64(m.proc.Vocab()) }

func (m *mdlm) times(u []float64) []float64 {
	if m.steps == 0 {
		return u
	}
	return snap(u, m.steps)
}

func (m *mdlm) noise(x0 *ts.Tensor, t []float64, _ bool) *ts.Tensor {
	return m.proc.Sample(x0, sigmas(m.proc.Schedule(), t))
}

// weight is the per-sequence factor of the masked cross-entropies, ×T in
// discrete time (one step is sampled per sequence). It is 0, never NaN,
// where nothing can be masked (σ = 0).
func (m *mdlm) weight(t float64) float64 {
	sched := m.proc.Schedule()
	if m.steps == 0 {
		sigma := sched.Sigma(t)
		if sigma <= 0 {
			return 0
		}
		return sched.DSigma(t) / math.Expm1(sigma)
	}
	i := step(t, m.steps)
	prev := 0.0 // σ_0 = 0: the chain starts at the data
	if i > 1 {
		prev = sched.Sigma(float64(i-1) / float64(m.steps))
	}
	cur := sched.Sigma(t)
	// (α_{i−1} − α_i)/(1 − α_i) through expm1, accurate for small steps.
	return float64(m.steps) * math.Exp(-prev) * -math.Expm1(-(cur - prev)) / -math.Expm1(-cur)
}

func (m *mdlm) terms(net Net, x0, xt, weights *ts.Tensor, t []float64, train bool) (terms, error) {
	s := torchx.NewScope()
	defer s.Close()
	w := make([]float64, len(t))
	for b, tb := range t {
		w[b] = m.weight(tb)
	}
	if rn, ok := net.(rowNet); ok {
		cost, sum, err := maskedCost(rn, xt, x0, xt, weights, m.maskID(), func(dtype gotch.DType, dev gotch.Device) *ts.Tensor {
			return perSeq(w, dtype, dev).MustExpand(xt.MustSize(), false, true)
		}, m.proc.Vocab(), m.ceChunk, train)
		if err != nil {
			return terms{}, err
		}
		s.T(cost)
		if sum != nil {
			s.T(sum)
		}
		prior := m.proc.PriorKL(x0).MustTotype(cost.DType(), true)
		return terms{bound: cost.MustAdd(prior, false), prior: prior, sum: plusPrior(sum, prior, weights)}, nil
	}
	logits, err := m.logits(net, xt, train)
	if err != nil {
		return terms{}, err
	}
	s.T(logits)
	dtype, dev := logits.DType(), logits.MustDevice()
	// Only masked positions cost anything; SUBS's copy of the others
	// (LogX0) would change nothing here.
	masked := s.T(s.T(xt.MustEq(ts.IntScalar(m.maskID()), false)).MustTotype(dtype, false))
	cost := s.T(s.T(s.T(nll(logits, x0)).MustMul(masked, false)).MustMul(s.T(perSeq(w, dtype, dev)), false))
	prior := m.proc.PriorKL(x0).MustTotype(dtype, true)
	return terms{bound: cost.MustAdd(prior, false), prior: prior}, nil
}

// rowNet is a network that computes logits at chosen positions only
// (models.Transformer.ForwardRows).
type rowNet interface {
	ForwardRows(x, rows *ts.Tensor, train bool) *ts.Tensor
}

// maskedCost is the per-token cost [B,L] of SUBS's bound, w·(−log
// p̃(x0|x_t)) at masked positions and 0 elsewhere (weight gives w [B,L] in
// the logits' dtype and device), with the network's
// output layer run on the masked rows only: the same values and gradients
// as the full head, for about half its work in training. in is the
// network's input (x_t, or x_t ⊕ x_0 for BD3-LM); the masked positions
// are those of xt [B,L], which is in's first L columns.
//
// With chunk > 0 and a network whose head the loss can run (headNet), the
// cross-entropy is chunked: in training (chunkedCE) the cost then has no
// gradient and sum, Σ weights·cost over the batch (weights [B,L], the loss
// weights, nil: ones), carries it; in evaluation (chunkedCost) only the
// costs are computed. Otherwise sum is nil.
func maskedCost(rn rowNet, in, x0, xt, weights *ts.Tensor, maskID int64, weight func(gotch.DType, gotch.Device) *ts.Tensor, V, chunk int, train bool) (cost, sum *ts.Tensor, err error) {
	s := torchx.NewScope()
	defer s.Close()
	size := xt.MustSize()
	B, L := size[0], size[1]
	width := in.MustSize()[1]
	// Flat masked positions of xt, as rows of in's B·width positions.
	pos := s.T(s.T(s.T(xt.MustEq(ts.IntScalar(maskID), false)).MustFlatten(0, -1, false)).MustNonzero(false))
	pos = s.T(pos.MustSqueezeDim(1, false))
	rows := s.T(s.T(s.T(pos.MustDivScalarMode(ts.IntScalar(L), "floor", false)).MustMulScalar(ts.IntScalar(width), false)).MustAdd(s.T(pos.MustRemainder(ts.IntScalar(L), false)), false))
	m := pos.MustSize()[0]
	dev := xt.MustDevice()
	if m == 0 {
		return ts.MustZeros([]int64{B, L}, gotch.Float, dev), nil, nil
	}
	target := s.T(s.T(x0.MustFlatten(0, -1, false)).MustIndexSelect(0, pos, false))
	atRows := func(x *ts.Tensor) *ts.Tensor {
		return s.T(s.T(x.MustFlatten(0, -1, false)).MustIndexSelect(0, pos, false))
	}
	var rowCost *ts.Tensor
	if hn, ok := rn.(headNet); ok && chunk > 0 {
		h := s.T(hn.HiddenRows(in, rows, train))
		wTok := atRows(s.T(weight(h.DType(), dev)))
		w, b := hn.Projection()
		if train {
			var scale *ts.Tensor
			if weights != nil {
				scale = atRows(s.T(weights.MustTotype(h.DType(), false)))
			}
			sum, rowCost, err = chunkedCE(h, w, b, target, wTok, scale, chunk)
		} else {
			rowCost, err = chunkedCost(h, w, b, target, wTok, chunk)
		}
		if err != nil {
			return nil, nil, err
		}
		s.T(rowCost)
	} else {
		logits := s.T(rn.ForwardRows(in, rows, train))
		if got := logits.MustSize(); len(got) != 2 || got[0] != m || got[1] != int64(V) {
			return nil, nil, fmt.Errorf("network returned row logits of shape %v, want [%d %d]", got, m, V)
		}
		lse := s.T(logits.MustLogsumexp([]int64{-1}, false, false))
		picked := s.T(s.T(logits.MustGather(-1, s.T(target.MustUnsqueeze(-1, false)), false, false)).MustSqueezeDim(-1, false))
		wTok := atRows(s.T(weight(logits.DType(), dev)))
		rowCost = s.T(s.T(lse.MustSub(picked, false)).MustMul(wTok, false))
	}
	zeros := s.T(ts.MustZeros([]int64{B * L}, rowCost.DType(), dev))
	return s.T(zeros.MustScatter(0, pos, rowCost, false)).MustView([]int64{B, L}, false), sum, nil
}

// plusPrior is sum + Σ weights·prior (weights nil: ones): the chunked
// cost's sum with the prior term added, as Loss would have summed the
// bound. nil stays nil.
func plusPrior(sum, prior, weights *ts.Tensor) *ts.Tensor {
	if sum == nil {
		return nil
	}
	s := torchx.NewScope()
	defer s.Close()
	w := s.T(weightsLike(weights, prior))
	p := s.T(s.T(prior.MustMul(w, false)).MustSum(sum.DType(), false))
	return sum.MustAdd(p, false)
}

// logZero stands for log 0 in SUBS outputs: finite, so that 0·logZero is 0.
const logZero = -1e9

// LogX0 is log p̃(x0|x_t) [B,L,V] under SUBS: the network's log-softmax at
// masked positions; at unmasked ones 0 at the token and logZero elsewhere.
// sigma is ignored (the network has no time input).
//
// With a network that computes chosen rows only (rowNet), the output
// layer runs on the masked positions alone: unmasked rows are copies
// whatever their logits, so they are left at zero.
func (m *mdlm) LogX0(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error) {
	if rn, ok := net.(rowNet); ok {
		s := torchx.NewScope()
		defer s.Close()
		size := xt.MustSize()
		rows := s.T(s.T(s.T(s.T(xt.MustEq(ts.IntScalar(m.maskID()), false)).MustFlatten(0, -1, false)).MustNonzero(false)).MustSqueezeDim(1, false))
		V := int64(m.proc.Vocab())
		full := s.T(ts.MustZeros([]int64{size[0] * size[1], V}, gotch.Float, xt.MustDevice()))
		// One network call even with nothing masked, as without rows: the
		// samplers count a call per step.
		part := s.T(rn.ForwardRows(xt, rows, false))
		if got := part.MustSize(); len(got) != 2 || got[0] != rows.MustSize()[0] || got[1] != V {
			return nil, fmt.Errorf("network returned row logits of shape %v, want [%d %d]", got, rows.MustSize()[0], V)
		}
		full = s.T(s.T(full.MustTotype(part.DType(), false)).MustIndexCopy(0, rows, part, false))
		return subs(s.T(full.MustView([]int64{size[0], size[1], V}, false)), xt, m.proc.Vocab()), nil
	}
	logits, err := m.logits(net, xt, false)
	if err != nil {
		return nil, err
	}
	defer logits.MustDrop()
	return subs(logits, xt, m.proc.Vocab()), nil
}

// subs applies the SUBS parameterisation to clean-token logits [B,L,V] of
// x_t over V tokens (mask id V): log-softmax at masked positions, a copy
// of x_t (0 at its token, logZero elsewhere) at the others.
func subs(logits, xt *ts.Tensor, V int) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	logp := s.T(logits.MustLogSoftmax(-1, logits.DType(), false))
	// Unmasked positions copy x_t: log 0 everywhere but 0 at x_t, one fill
	// and one scatter (a dense one-hot over [B,L,V] cost more than the
	// network). The mask id itself is out of range, so clamp it (those rows
	// are not used).
	ids := s.T(xt.MustClampMax(ts.IntScalar(int64(V-1)), false))
	idx := s.T(ids.MustUnsqueeze(-1, false))
	copyLog := s.T(s.T(logp.MustFullLike(ts.FloatScalar(logZero), false)).MustScatterValue(-1, idx, ts.FloatScalar(0), false))
	masked := s.T(s.T(xt.MustEq(ts.IntScalar(int64(V)), false)).MustUnsqueeze(-1, false))
	return logp.MustWhereSelf(masked, copyLog, false)
}

// logits runs the network (no time input) and checks its output.
func (m *mdlm) logits(net Net, xt *ts.Tensor, train bool) (*ts.Tensor, error) {
	size := xt.MustSize()
	logits := net.Forward(xt, nil, train)
	if err := checkLogits(logits, size[0], size[1], m.proc.Vocab()); err != nil {
		logits.MustDrop()
		return nil, err
	}
	return logits, nil
}
