package losses

import (
	"math"

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

func (m *mdlm) terms(net Net, x0, xt *ts.Tensor, t []float64, train bool) (terms, error) {
	s := torchx.NewScope()
	defer s.Close()
	logits, err := m.logits(net, xt, train)
	if err != nil {
		return terms{}, err
	}
	s.T(logits)
	dtype, dev := logits.DType(), logits.MustDevice()
	w := make([]float64, len(t))
	for b, tb := range t {
		w[b] = m.weight(tb)
	}
	// Only masked positions cost anything; SUBS's copy of the others
	// (LogX0) would change nothing here.
	masked := s.T(s.T(xt.MustEq(ts.IntScalar(m.maskID()), false)).MustTotype(dtype, false))
	cost := s.T(s.T(s.T(nll(logits, x0)).MustMul(masked, false)).MustMul(s.T(perSeq(w, dtype, dev)), false))
	prior := m.proc.PriorKL(x0).MustTotype(dtype, true)
	return terms{bound: cost.MustAdd(prior, false), prior: prior}, nil
}

// logZero stands for log 0 in SUBS outputs: finite, so that 0·logZero is 0.
const logZero = -1e9

// LogX0 is log p̃(x0|x_t) [B,L,V] under SUBS: the network's log-softmax at
// masked positions; at unmasked ones 0 at the token and logZero elsewhere.
// sigma is ignored (the network has no time input).
func (m *mdlm) LogX0(net Net, xt *ts.Tensor, sigma []float64) (*ts.Tensor, error) {
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
