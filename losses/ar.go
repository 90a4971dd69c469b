package losses

import (
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

func (a *ar) terms(net Net, x0, xt *ts.Tensor, t []float64, train bool) (terms, error) {
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
