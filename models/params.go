package models

import (
	"fmt"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// params creates leaf parameters under a path and counts them. Every
// parameter gets an explicit initialiser: gotch's defaults give a
// first-step cross-entropy of ~60 on an 8k vocabulary instead of ln V.
// The first error sticks and later calls do nothing, so constructors read
// as a plain list of parameters and check once at the end (as
// bufio.Scanner does).
type params struct {
	err  error
	n    int64
	list []*ts.Tensor // in creation order
}

// new creates the trainable parameter p.name with the given shape and init.
func (ps *params) new(p *nn.Path, name string, shape []int64, init nn.Init) *ts.Tensor {
	if ps.err != nil {
		return nil
	}
	t, err := p.NewVar(name, shape, init)
	if err != nil {
		ps.err = fmt.Errorf("parameter %s %v: %w", name, shape, err)
		return nil
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	ps.n += n
	ps.list = append(ps.list, t)
	return t
}

// linear is a PyTorch-layout weight [out, in], used through ts.Linear (the
// addmm PyTorch's nn.Linear calls), and a bias [out] or, without one,
// gotch's undefined tensor ts.None, which libtorch reads as "no bias".
type linear struct {
	w, b *ts.Tensor
}

// newLinear creates p.weight with normal(0, std) (std 0 gives zeros) and,
// if bias, p.bias = 0.
func (ps *params) newLinear(p *nn.Path, in, out int, std float64, bias bool) linear {
	var init nn.Init = nn.NewRandnInit(0, std)
	if std == 0 {
		init = nn.NewConstInit(0)
	}
	l := linear{w: ps.new(p, "weight", []int64{int64(out), int64(in)}, init), b: ts.None}
	if bias {
		l.b = ps.new(p, "bias", []int64{int64(out)}, nn.NewConstInit(0))
	}
	return l
}

// forward computes x·wᵀ + b over the last dimension of x.
func (l linear) forward(x *ts.Tensor) *ts.Tensor { return ts.MustLinear(x, l.w, l.b) }

// layerNorm normalises the last dimension with a learned scale (init 1)
// and no bias, as MDLM's DiT does: the adaLN shift, or the next linear
// layer's bias, already provides an offset.
type layerNorm struct {
	shape []int64
	w, b  *ts.Tensor // b is ts.None: no bias
}

func (ps *params) newLayerNorm(p *nn.Path, width int) layerNorm {
	shape := []int64{int64(width)}
	return layerNorm{shape: shape, w: ps.new(p, "weight", shape, nn.NewConstInit(1)), b: ts.None}
}

func (n layerNorm) forward(x *ts.Tensor) *ts.Tensor {
	return ts.MustLayerNorm(x, n.shape, n.w, n.b, 1e-5, false)
}
