package losses

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// ar is the autoregressive baseline's exact NLL. The network is causal and
// reads ARInput(x0) = [BOS, x0_0, …, x0_{L−2}] with BOS = V, so position l
// predicts x0_l from x0_{<l} and all L tokens are scored: the same token
// count as the diffusion bounds.
type ar struct {
	base
	v int
}

// ARInput is x0 shifted right by one with the BOS id V in front: the
// causal network's input for next-token prediction (and for scoring or
// continuing text with the AR reference model).
func ARInput(x0 *ts.Tensor, V int) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := x0.MustSize()
	bos := s.T(ts.MustFull([]int64{size[0], 1}, ts.IntScalar(int64(V)), x0.DType(), x0.MustDevice()))
	head := s.T(x0.MustNarrow(1, 0, size[1]-1, false))
	return ts.MustCat([]*ts.Tensor{bos, head}, 1)
}

func (a *ar) times(u []float64) []float64 { return u }

// noise is the identity: the AR objective has no noise.
func (a *ar) noise(x0 *ts.Tensor, t []float64, _ bool) *ts.Tensor { return x0.MustShallowClone() }

func (a *ar) terms(net Net, x0, xt, weights *ts.Tensor, t []float64, train bool) (terms, error) {
	if hn, ok := net.(headNet); ok && a.ceChunk > 0 {
		return a.chunked(hn, x0, weights, train)
	}
	s := torchx.NewScope()
	defer s.Close()
	size := x0.MustSize()
	logits := s.T(net.Forward(s.T(ARInput(x0, a.v)), nil, train))
	if err := checkLogits(logits, size[0], size[1], a.v); err != nil {
		return terms{}, err
	}
	cost := nll(logits, x0)
	return terms{bound: cost, prior: cost.MustZerosLike(false)}, nil
}

// chunked is terms with the cross-entropy computed in chunks of rows
// (chunkedCE in training, chunkedCost in evaluation), for a vocabulary
// whose [B·L, V] logits would not fit.
func (a *ar) chunked(hn headNet, x0, weights *ts.Tensor, train bool) (terms, error) {
	s := torchx.NewScope()
	defer s.Close()
	size := x0.MustSize()
	n := size[0] * size[1]
	rows := s.T(ts.MustArange(ts.IntScalar(n), gotch.Int64, x0.MustDevice()))
	h := s.T(hn.HiddenRows(s.T(ARInput(x0, a.v)), rows, train))
	ones := s.T(ts.MustOnes([]int64{n}, h.DType(), x0.MustDevice()))
	target := s.T(x0.MustFlatten(0, -1, false))
	w, b := hn.Projection()
	if !train {
		cost, err := chunkedCost(h, w, b, target, ones, a.ceChunk)
		if err != nil {
			return terms{}, err
		}
		bound := cost.MustView(size, true)
		return terms{bound: bound, prior: bound.MustZerosLike(false)}, nil
	}
	var scale *ts.Tensor
	if weights != nil {
		scale = s.T(s.T(weights.MustTotype(h.DType(), false)).MustFlatten(0, -1, false))
	}
	sum, cost, err := chunkedCE(h, w, b, target, ones, scale, a.ceChunk)
	if err != nil {
		return terms{}, err
	}
	s.T(cost)
	bound := cost.MustView(size, false)
	return terms{bound: bound, prior: bound.MustZerosLike(false), sum: sum}, nil
}
