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
type dropoutNoise struct {
	noise []*ts.Tensor
	ready []chan struct{}
	next  int
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

// apply is dropout at the next site: y · noise, waiting for that noise.
func (d *dropoutNoise) apply(y *ts.Tensor) *ts.Tensor {
	i := d.next
	d.next++
	<-d.ready[i]
	n := d.noise[i]
	if y.DType() != n.DType() || !slices.Equal(y.MustSize(), n.MustSize()) {
		panic(fmt.Sprintf("models: dropout site %d: branch %v %v, noise drawn as %v %v", i, y.DType(), y.MustSize(), n.DType(), n.MustSize()))
	}
	return y.MustMul(n, false)
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
