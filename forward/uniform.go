package forward

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// Uniform is the process in which every token jumps to each other token at
// rate 1/V (R = 11ᵀ/V − I), so q_σ(·|x0) = α·e_{x0} + (1−α)/V with
// α = e^{−σ}. Its prior is uniform over the V tokens.
type Uniform struct {
	v     int
	sched Schedule
}

// NewUniform is the uniform process over V tokens.
func NewUniform(V int, sched Schedule) *Uniform { return &Uniform{v: V, sched: sched} }

func (u *Uniform) Name() string       { return "uniform" }
func (u *Uniform) Vocab() int         { return u.v }
func (u *Uniform) NumStates() int     { return u.v }
func (u *Uniform) Schedule() Schedule { return u.sched }

// Sample resamples each position, with probability 1−α, from the uniform
// distribution (which may return the same token).
func (u *Uniform) Sample(x0 *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev := x0.MustSize()[0], x0.MustDevice()
	draw := s.T(ts.MustRand(x0.MustSize(), gotch.Double, dev))
	pMove := s.T(s.T(perRow(mapRow(sigma, moved), b, gotch.Double, dev)).MustSqueezeDim(-1, false))
	move := s.T(draw.MustLtTensor(pMove, false))
	fresh := s.T(ts.MustRandint(int64(u.v), x0.MustSize(), gotch.Int64, dev))
	return fresh.MustWhereSelf(move, x0, false)
}

func (u *Uniform) Row(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev := x.MustSize()[0], x.MustDevice()
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	spread := s.T(perRow(mapRow(sigma, func(sg float64) float64 { return moved(sg) / float64(u.v) }), b, dtype, dev))
	stay := s.T(s.T(oneHot(x, int64(u.v), dtype)).MustMul(keep, false))
	return stay.MustAdd(spread, false)
}

// Column equals Row: R is symmetric.
func (u *Uniform) Column(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	return u.Row(x, sigma, dtype)
}

func (u *Uniform) Propagate(w *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev, dtype := w.MustSize()[0], w.MustDevice(), w.DType()
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	spread := s.T(perRow(mapRow(sigma, func(sg float64) float64 { return moved(sg) / float64(u.v) }), b, dtype, dev))
	total := s.T(w.MustSumDimIntlist([]int64{-1}, true, dtype, false))
	return s.T(w.MustMul(keep, false)).MustAdd(s.T(total.MustMul(spread, false)), false)
}

func (u *Uniform) Entries(x0, y *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b, dev := x0.MustSize()[0], x0.MustDevice()
	keep := s.T(perRow(mapRow(sigma, kept), b, dtype, dev))
	spread := s.T(perRow(mapRow(sigma, func(sg float64) float64 { return moved(sg) / float64(u.v) }), b, dtype, dev))
	same := s.T(s.T(y.MustEqTensor(s.T(x0.MustUnsqueeze(-1, false)), false)).MustTotype(dtype, false))
	return s.T(same.MustMul(keep, false)).MustAdd(spread, false)
}

func (u *Uniform) JumpsInto(xt *ts.Tensor, dtype gotch.DType) (from, rate *ts.Tensor) {
	oh := oneHot(xt, int64(u.v), dtype)
	defer oh.MustDrop()
	return nil, oh.MustRsubScalar(ts.FloatScalar(1), false).MustDivScalar(ts.FloatScalar(float64(u.v)), true)
}

func (u *Uniform) Prior() []float64 {
	pi := make([]float64, u.v)
	for i := range pi {
		pi[i] = 1 / float64(u.v)
	}
	return pi
}

// PriorKL is, with a = α(1): (a + (1−a)/V)·log(Va + 1 − a) +
// (V−1)(1−a)/V·log(1−a), the same for every x0.
func (u *Uniform) PriorKL(x0 *ts.Tensor) *ts.Tensor {
	a, v := u.sched.Alpha(1), float64(u.v)
	kl := (a+(1-a)/v)*math.Log1p(a*(v-1)) + (v-1)*(1-a)/v*math.Log1p(-a)
	return ts.MustFull(x0.MustSize(), ts.FloatScalar(kl), gotch.Double, x0.MustDevice())
}
