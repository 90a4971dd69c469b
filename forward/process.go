// Package forward holds the forward (noising) processes of discrete
// diffusion: absorbing (mask), uniform and embedding-distance (D3PM's
// nearest-neighbour process), and their noise schedules.
//
// Every process is a continuous-time Markov chain on N states with a fixed
// rate matrix R, run for a cumulative noise σ = σ(t) given by its Schedule:
// the marginal is q_σ(·|x0) = row x0 of exp(σR), a one-step transition from
// σ_s to σ_t is exp((σ_t−σ_s)R), and every method takes σ, one value per
// sequence, never t. Each position of a sequence is noised independently.
//
// States: ids 0..V−1 are the real tokens (EOS included); the absorbing
// process adds the mask state with id V, so N = V+1 there and N = V for the
// others. Token tensors are int64 [B,L]; distributions over states are
// [B,L,N] in the dtype the caller asks for.
package forward

import (
	"fmt"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// Process is a forward process. Callers must be on a torchx.Lock'ed thread.
// Methods that take sigma panic when len(sigma) is not the batch size B.
type Process interface {
	// Name is absorbing, uniform or embedding.
	Name() string
	// Vocab is V, the number of real tokens.
	Vocab() int
	// NumStates is N: V+1 for absorbing (mask id V), V otherwise.
	NumStates() int
	// Schedule maps time to σ.
	Schedule() Schedule

	// Sample draws x_t ~ q_σ(·|x0) with torch's generator.
	Sample(x0 *ts.Tensor, sigma []float64) *ts.Tensor
	// Row is the marginal q_σ(·|x) = exp(σR)[x, ·] for every position:
	// [B,L,N]. x may hold any state. On a D3PM grid, σ = σ_i gives rows of
	// the cumulative Q̄_i and σ = σ_i − σ_{i−1} rows of the one-step Q_i.
	Row(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor
	// Column is exp(σR)[·, x] for every position: [B,L,N], entry y being
	// the probability that state y has become x after noise σ.
	Column(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor
	// Propagate is w·exp(σR) for row vectors w [B,L,V] over the real
	// tokens (the only states x0 takes): [B,L,N] in w's dtype. It is
	// differentiable in w.
	Propagate(w *ts.Tensor, sigma []float64) *ts.Tensor
	// Entries is q_σ(y|x0) for index tensors y [B,L,K]: [B,L,K]. It costs
	// O(K) per position where Row costs O(N) (O(V²) for embedding).
	Entries(x0, y *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor
	// JumpsInto lists, per position, the states y that jump into x_t and
	// the forward rate R[y, x_t] of each jump, as from and rate [B,L,K]
	// (padded slots have rate 0). from is nil when every state may be
	// listed (absorbing, uniform): then K = N and slot y is state y.
	// Score entropy sums over these; a reverse (Euler) sampler jumps from
	// x_t to y at rate R[y,x_t]·s(x_t)_y.
	JumpsInto(xt *ts.Tensor, dtype gotch.DType) (from, rate *ts.Tensor)

	// Prior is the distribution π over N states that x_1 is drawn from
	// (the same at every position).
	Prior() []float64
	// PriorKL is KL(q_{σ(1)}(·|x0) ‖ π) per position, float64 [B,L]:
	// the prior term of every bound.
	PriorKL(x0 *ts.Tensor) *ts.Tensor
}

// Form selects how the model's reverse step p_θ(x_s|x_t) is built from the
// network's clean-token distribution p̃(x0|x_t); see ModelPosterior.
type Form int

const (
	// Mixture is p_θ(x_s|x_t) = Σ_v p̃(v|x_t)·q(x_s|x_t, x0=v): the exact
	// marginals p(x0|x_t) are its optimal p̃.
	Mixture Form = iota
	// Proportional is D3PM's p_θ(x_s|x_t) ∝ Q_{s→t}[·,x_t] ⊙ (p̃·Q̄_s): its
	// optimal p̃ is p(x0=v|x_t)/Q̄_t[v,x_t], renormalised. It equals
	// Mixture for absorbing, where Q̄_t[v,m] does not depend on v. At the
	// last reverse step (σ_s = 0) it is p̃ itself, as in D3PM's code
	// (p_θ(x0|x_1) is the network's prediction, not Q_1[·,x_1] ⊙ p̃).
	Proportional
)

// tiny floors probabilities before a log or a division.
const tiny = 1e-30

// Posterior is q(x_s = ·|x_t, x0) for σ_s ≤ σ_t, [B,L,N]:
// ∝ Q_{s→t}[·, x_t] ⊙ Q̄_s[x0, ·]. Ancestral samplers and the D3PM loss
// use it; σ_s = 0 gives the point mass on x0.
func Posterior(p Process, x0, xt *ts.Tensor, sigmaS, sigmaT []float64, dtype gotch.DType) *ts.Tensor {
	col := p.Column(xt, diff(sigmaT, sigmaS), dtype)
	defer col.MustDrop()
	return posterior(p, col, x0, sigmaS)
}

// ModelPosterior is the model's reverse step p_θ(x_s = ·|x_t), [B,L,N],
// built from the network's clean-token probabilities x0probs [B,L,V] in the
// given form; differentiable in x0probs. For absorbing it is MDLM's
// ancestral step: a masked position unmasks with probability
// (α_s−α_t)/(1−α_t) to a draw from p̃, an unmasked one stays.
func ModelPosterior(p Process, x0probs, xt *ts.Tensor, sigmaS, sigmaT []float64, form Form) *ts.Tensor {
	col := p.Column(xt, diff(sigmaT, sigmaS), x0probs.DType())
	defer col.MustDrop()
	return modelPosterior(p, col, x0probs, xt, sigmaS, sigmaT, form)
}

// Posteriors is Posterior and ModelPosterior of one reverse step at once,
// sharing the one-step column Q_{s→t}[·, x_t] (for embedding, one V×V
// product fewer per position). The D3PM loss uses it.
func Posteriors(p Process, x0, x0probs, xt *ts.Tensor, sigmaS, sigmaT []float64, form Form) (q, model *ts.Tensor) {
	col := p.Column(xt, diff(sigmaT, sigmaS), x0probs.DType())
	defer col.MustDrop()
	return posterior(p, col, x0, sigmaS), modelPosterior(p, col, x0probs, xt, sigmaS, sigmaT, form)
}

// posterior is normalize(col ⊙ Q̄_s[x0, ·]).
func posterior(p Process, col, x0 *ts.Tensor, sigmaS []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	row := s.T(p.Row(x0, sigmaS, col.DType()))
	return normalize(s.T(col.MustMul(row, false)))
}

// modelPosterior is normalize(col ⊙ w·Q̄_s) with w = p̃ (proportional) or
// p̃/Q̄_t[·, x_t] (mixture).
func modelPosterior(p Process, col, x0probs, xt *ts.Tensor, sigmaS, sigmaT []float64, form Form) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	w := x0probs
	if form == Mixture {
		// w_v = p̃(v)/Q̄_t[v, x_t]; clean tokens that cannot have produced
		// x_t get weight 0. Scaling w does not change the result, so it is
		// normalised to keep float32 far from overflow.
		c := s.T(p.Column(xt, sigmaT, x0probs.DType()))
		c = s.T(c.MustNarrow(-1, 0, int64(p.Vocab()), false))
		possible := s.T(c.MustGt(ts.FloatScalar(0), false))
		ratio := s.T(x0probs.MustDiv(s.T(c.MustClampMin(ts.FloatScalar(tiny), false)), false))
		zero := s.T(ratio.MustZerosLike(false))
		w = s.T(ratio.MustWhereSelf(possible, zero, false))
		w = s.T(normalize(w))
	}
	prop := s.T(p.Propagate(w, sigmaS))
	out := normalize(s.T(col.MustMul(prop, false)))
	if form != Proportional || !slices.Contains(sigmaS, 0) {
		return out
	}
	// Rows at σ_s = 0 take p̃ itself (padded with 0 for the extra states).
	s.T(out)
	size := out.MustSize()
	last := x0probs
	if extra := size[len(size)-1] - int64(p.Vocab()); extra > 0 {
		pad := s.T(ts.MustZeros(append(size[:len(size)-1:len(size)-1], extra), x0probs.DType(), x0probs.MustDevice()))
		last = s.T(ts.MustCat([]*ts.Tensor{x0probs, pad}, -1))
	}
	atZero := make([]float64, len(sigmaS))
	for i, v := range sigmaS {
		if v == 0 {
			atZero[i] = 1
		}
	}
	mask := s.T(s.T(perRow(atZero, size[0], x0probs.DType(), x0probs.MustDevice())).MustGt(ts.FloatScalar(0.5), false))
	return s.T(normalize(last)).MustWhereSelf(mask, out, false)
}

// SamplePrior draws [b,l] states from p.Prior() on device.
func SamplePrior(p Process, b, l int64, device gotch.Device) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	pi := s.T(ts.MustOfSlice(p.Prior()).MustTo(device, true))
	draws := s.T(pi.MustMultinomial(b*l, true, false))
	return draws.MustView([]int64{b, l}, false)
}

// normalize divides the last dimension by its sum.
func normalize(x *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	sum := s.T(x.MustSumDimIntlist([]int64{-1}, true, x.DType(), false))
	return x.MustDiv(s.T(sum.MustClampMin(ts.FloatScalar(tiny), false)), false)
}

// diff is a−b elementwise.
func diff(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// perRow turns one value per sequence into a [B,1,1] tensor that broadcasts
// over [B,L,·]; it panics if the batch sizes disagree.
func perRow(vals []float64, b int64, dtype gotch.DType, device gotch.Device) *ts.Tensor {
	if int64(len(vals)) != b {
		panic(fmt.Sprintf("forward: %d noise levels for a batch of %d sequences", len(vals), b))
	}
	t := ts.MustOfSlice(vals).MustView([]int64{b, 1, 1}, true)
	return t.MustTo(device, true).MustTotype(dtype, true)
}

// mapRow applies f to each σ: the per-sequence scalars of closed forms,
// computed in float64 before they become tensors.
func mapRow(sigma []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(sigma))
	for i, s := range sigma {
		out[i] = f(s)
	}
	return out
}

// oneHot is x [B,L] as [B,L,n] in dtype, scattered straight into dtype
// (libtorch's one_hot builds an int64 tensor, twice the size of a float32
// one, and a conversion would copy it again).
func oneHot(x *ts.Tensor, n int64, dtype gotch.DType) *ts.Tensor {
	idx := x.MustUnsqueeze(-1, false)
	defer idx.MustDrop()
	zeros := ts.MustZeros(append(x.MustSize(), n), dtype, x.MustDevice())
	return zeros.MustScatterValue(-1, idx, ts.FloatScalar(1), true)
}

// basis is the unit vector e_i of length n.
func basis(n, i int64, dtype gotch.DType, device gotch.Device) *ts.Tensor {
	v := make([]float64, n)
	v[i] = 1
	return ts.MustOfSlice(v).MustTo(device, true).MustTotype(dtype, true)
}

// float64s copies a tensor's values to Go as float64, whatever its dtype
// and device, and frees the intermediate copies (gotch's Float64Values
// leaves its float64 copy to the garbage collector).
func float64s(t *ts.Tensor) []float64 {
	c := t.MustTo(gotch.CPU, false).MustTotype(gotch.Double, true).MustContiguous(true)
	defer c.MustDrop()
	out := make([]float64, c.Numel())
	c.MustCopyData(out, c.Numel())
	return out
}
