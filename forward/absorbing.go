package forward

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// Absorbing is the mask process: every real token jumps to the mask state
// m = V at rate 1, so q_σ(x_t|x0) = α[x_t=x0] + (1−α)[x_t=m], α = e^{−σ}.
//
// Its prior keeps what the schedule leaves unmasked at t = 1: with
// α₁ = α(1) = ε > 0 an all-mask prior would make the prior KL infinite, so
// π = (1−α₁)·δ_m + α₁·uniform(V), and KL(q₁‖π) = α₁·log V per token (about
// 0.009 nats at ε = 1e-3, V = 8192). Samplers that start from all-mask
// instead differ from π by α₁ in total variation per token.
type Absorbing struct {
	v     int
	sched Schedule
}

// NewAbsorbing is the absorbing process over V real tokens.
func NewAbsorbing(V int, sched Schedule) *Absorbing { return &Absorbing{v: V, sched: sched} }

func (a *Absorbing) Name() string       { return "absorbing" }
func (a *Absorbing) Vocab() int         { return a.v }
func (a *Absorbing) NumStates() int     { return a.v + 1 }
func (a *Absorbing) Schedule() Schedule { return a.sched }

// MaskID is the id of the mask state, V.
func (a *Absorbing) MaskID() int64 { return int64(a.v) }

func (a *Absorbing) Sample(x0 *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b := x0.MustSize()[0]
	u := s.T(ts.MustRand(x0.MustSize(), gotch.Double, x0.MustDevice()))
	pMask := s.T(perRow(mapRow(sigma, moved), b, gotch.Double, x0.MustDevice()))
	masked := s.T(u.MustLtTensor(s.T(pMask.MustSqueezeDim(-1, false)), false))
	return x0.MustMaskedFill(masked, ts.IntScalar(a.MaskID()), false)
}

func (a *Absorbing) Row(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev, n := x.MustSize()[0], x.MustDevice(), int64(a.NumStates())
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	mv := s.T(perRow(mapRow(sigma, moved), b, dtype, dev))
	mask := s.T(basis(n, a.MaskID(), dtype, dev))
	// Row x = v: α·e_v + (1−α)·e_m. Row x = m: e_m, which the same
	// expression gives because e_v = e_m there.
	stay := s.T(s.T(oneHot(x, n, dtype)).MustMul(keep, false))
	return stay.MustAdd(s.T(mask.MustMul(mv, false)), false)
}

func (a *Absorbing) Column(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev, n := x.MustSize()[0], x.MustDevice(), int64(a.NumStates())
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	mv := s.T(perRow(mapRow(sigma, moved), b, dtype, dev))
	// Into a real token v only v itself arrives (prob α); into m every
	// real token arrives with prob 1−α and m stays with prob 1.
	isMask := s.T(s.T(x.MustEq(ts.IntScalar(a.MaskID()), false)).MustUnsqueeze(-1, false))
	mask := s.T(basis(n, a.MaskID(), dtype, dev))
	real := s.T(mask.MustRsubScalar(ts.FloatScalar(1), false))
	oh := s.T(oneHot(x, n, dtype))
	intoMask := s.T(s.T(real.MustMul(mv, false)).MustAdd(mask, false))
	intoReal := s.T(oh.MustMul(keep, false))
	return intoMask.MustWhereSelf(isMask, intoReal, false)
}

func (a *Absorbing) Propagate(w *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev, dtype := w.MustSize()[0], w.MustDevice(), w.DType()
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	mv := s.T(perRow(mapRow(sigma, moved), b, dtype, dev))
	total := s.T(w.MustSumDimIntlist([]int64{-1}, true, dtype, false))
	return ts.MustCat([]*ts.Tensor{s.T(w.MustMul(keep, false)), s.T(total.MustMul(mv, false))}, -1)
}

func (a *Absorbing) Entries(x0, y *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev := x0.MustSize()[0], x0.MustDevice()
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	mv := s.T(perRow(mapRow(sigma, moved), b, dtype, dev))
	same := s.T(s.T(y.MustEqTensor(s.T(x0.MustUnsqueeze(-1, false)), false)).MustTotype(dtype, false))
	mask := s.T(s.T(y.MustEq(ts.IntScalar(a.MaskID()), false)).MustTotype(dtype, false))
	// x0 = m (never a clean token, but a valid state) stays m: same and
	// mask are both 1 there and keep + moved = 1.
	return s.T(same.MustMul(keep, false)).MustAdd(s.T(mask.MustMul(mv, false)), false)
}

func (a *Absorbing) JumpsInto(xt *ts.Tensor, dtype gotch.DType) (from, rate *ts.Tensor) {
	s := torchx.NewScope()
	defer s.Close()
	n := int64(a.NumStates())
	isMask := s.T(s.T(xt.MustEq(ts.IntScalar(a.MaskID()), false)).MustUnsqueeze(-1, false))
	real := s.T(s.T(basis(n, a.MaskID(), dtype, xt.MustDevice())).MustRsubScalar(ts.FloatScalar(1), false))
	return nil, real.MustMul(s.T(isMask.MustTotype(dtype, false)), false)
}

func (a *Absorbing) Prior() []float64 {
	a1 := a.sched.Alpha(1)
	pi := make([]float64, a.NumStates())
	for i := range a.v {
		pi[i] = a1 / float64(a.v)
	}
	pi[a.v] = 1 - a1
	return pi
}

func (a *Absorbing) PriorKL(x0 *ts.Tensor) *ts.Tensor {
	kl := a.sched.Alpha(1) * math.Log(float64(a.v))
	return ts.MustFull(x0.MustSize(), ts.FloatScalar(kl), gotch.Double, x0.MustDevice())
}

// kept is α = e^{−σ}; moved is 1−α, through expm1 so that it stays
// accurate for small σ.
func kept(sigma float64) float64  { return math.Exp(-sigma) }
func moved(sigma float64) float64 { return -math.Expm1(-sigma) }
