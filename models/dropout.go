package models

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// dropoutNoise draws a training pass's dropout noise on a second OS thread
// while the layers compute on the first. On the CPU, libtorch's dropout
// draws its Bernoulli mask one element at a time from the global generator
// — a serial loop, about a tenth of a tiny-preset step, during which the
// second core has nothing to do. The noise does not depend on the
// activations, only on the generator, and nothing else draws from the
// generator during a forward pass, so drawing every site's noise ahead, in
// site order, gives the same numbers; each site then waits only for its
// own draw.
//
// Each noise tensor is libtorch's (at::dropout on the CPU, _dropout_impl):
//
//	noise = bernoulli(1 − p) / (1 − p),   dropout(y) = y · noise
//
// so the output and its gradient are bit-identical to ts.MustDropout's
// (TestDropoutNoiseSameAsDropout). On CUDA, dropout is one fused kernel
// with its own generator and this is not used.
//
// The noise is drawn for the whole batch; a pass on lanes (lanes.go)
// reads each site's noise at its own rows, so the masks are the batch's.
type dropoutNoise struct {
	noise []*ts.Tensor
	ready []chan struct{}
	done  chan struct{}
}

// drawDropoutNoise starts drawing n noise tensors of shape and dtype for
// dropout probability p on the CPU; the caller must close it.
func drawDropoutNoise(n int, shape []int64, dtype gotch.DType, p float64) *dropoutNoise {
	d := &dropoutNoise{noise: make([]*ts.Tensor, n), ready: make([]chan struct{}, n), done: make(chan struct{})}
	for i := range d.ready {
		d.ready[i] = make(chan struct{})
	}
	go func() {
		// libtorch reports errors in a thread-local: this goroutine's
		// calls must stay on one OS thread (torchx.Lock).
		torchx.Lock()
		defer runtime.UnlockOSThread()
		defer close(d.done)
		keep := ts.FloatScalar(1 - p)
		for i := range d.noise {
			t := ts.MustEmpty(shape, dtype, gotch.CPU)
			torchx.Inplace(t, func() { t.MustBernoulliFloat_(1 - p) })
			torchx.Inplace(t, func() { t.MustDivScalar_(keep) })
			d.noise[i] = t
			close(d.ready[i])
		}
		runtime.KeepAlive(keep)
	}()
	return d
}

// at is the noise of dropout site i, once it is drawn; it belongs to d.
// Any number of goroutines may wait for the same site.
func (d *dropoutNoise) at(i int) *ts.Tensor {
	<-d.ready[i]
	return d.noise[i]
}

// close waits for the drawing thread and frees the noise tensors (the
// products keep what backward needs), so that after it the generator is
// where the sequential dropouts would have left it.
func (d *dropoutNoise) close() {
	if d == nil {
		return
	}
	<-d.done
	for _, t := range d.noise {
		t.MustDrop()
	}
}

// dropout is y · noise at the pass's next dropout site, the noise drawn
// ahead; a lane reads its rows of the batch's noise.
func (ps *pass) dropout(y *ts.Tensor) *ts.Tensor {
	i := ps.site
	ps.site++
	n := ps.noise.at(i)
	if ps.lane.n > 0 {
		n = n.MustNarrow(0, ps.lane.lo, ps.lane.n, false)
		defer n.MustDrop()
	}
	if y.DType() != n.DType() || !slices.Equal(y.MustSize(), n.MustSize()) {
		panic(fmt.Sprintf("models: dropout site %d: branch %v %v, noise drawn as %v %v", i, y.DType(), y.MustSize(), n.DType(), n.MustSize()))
	}
	return y.MustMul(n, false)
}
