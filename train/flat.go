package train

import (
	"fmt"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// flat lays the trainable parameters out in one contiguous buffer and their
// gradients in another, so that AdamW, the EMA, gradient zeroing and the
// gradient all-reduce are a handful of ops over N elements per step
// instead of a handful per parameter tensor — what torch's foreach and
// fused optimizers do, which gotch does not bind: one fused pass (the CPU)
// or eight ops (CUDA) per AdamW step instead of eight per tensor (small-cpu
// has 53), one all-reduce instead of one per tensor. As ops the flat step
// measured no faster on the CPU than per tensor (BenchmarkAdamWStep): one
// pass over all N elements loses the cache reuse that tensor-sized passes
// have; the fused pass (fused.go) is what makes it 5× faster.
//
// The parameters keep their identity: each one is set_ onto its view of
// the buffer, so the model, the checkpoints and the distributed broadcast
// hold the same tensors as before and see nothing different. So do the
// gradients: they are made defined once (a backward pass of 0·Σ p) and set_
// onto views of the gradient buffer, where autograd then accumulates in
// place, as it does into any defined gradient. The maths is elementwise and
// unchanged: the flat update equals the per-tensor one (TestFlatAdamWEqualsPerTensor).
//
// One difference from per-tensor code: every parameter has a gradient
// from the start (zeros when a step does not use it), so with weight decay
// an unused parameter decays, where torch.optim.AdamW skips a parameter
// whose .grad is None.
type flat struct {
	param, grad *ts.Tensor // [N]
	shapes      [][]int64
	offsets     []int64
}

// newFlat moves params (one dtype, one device, leaves that require grad)
// into one buffer, copying their current values, and gives them gradients
// in another.
func newFlat(params []*ts.Tensor) (*flat, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("train: no parameters to lay out")
	}
	dtype, dev := params[0].DType(), params[0].MustDevice()
	f := &flat{}
	var n int64
	for i, p := range params {
		if p.DType() != dtype || p.MustDevice() != dev {
			return nil, fmt.Errorf("train: parameter %d is %v on %v, parameter 0 %v on %v: one flat buffer needs one dtype and device", i, p.DType(), p.MustDevice(), dtype, dev)
		}
		f.shapes = append(f.shapes, p.MustSize())
		f.offsets = append(f.offsets, n)
		n += int64(p.Numel())
	}
	f.param = ts.MustZeros([]int64{n}, dtype, dev)
	f.grad = ts.MustZeros([]int64{n}, dtype, dev)

	// Define every gradient (zeros): autograd accumulates into a defined
	// gradient in place, so the views set below stay the gradients.
	if err := torchx.DefineGrads(params); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}

	torchx.NoGrad(func() {
		for i, p := range params {
			v := f.view(f.param, i)
			v.Copy_(p)
			torchx.Inplace(p, func() { p.MustSetSourceTensor_(v) })
			v.MustDrop()
			g := p.MustGrad(false)
			gv := f.view(f.grad, i)
			torchx.Inplace(g, func() { g.MustSetSourceTensor_(gv) })
			gv.MustDrop()
			g.MustDrop()
		}
	})
	return f, nil
}

// view is parameter i's shape-shaped view of a flat buffer [N].
func (f *flat) view(buf *ts.Tensor, i int) *ts.Tensor {
	n := int64(1)
	for _, d := range f.shapes[i] {
		n *= d
	}
	part := buf.MustNarrow(0, f.offsets[i], n, false)
	defer part.MustDrop()
	return part.MustView(f.shapes[i], false)
}

// like is a zero buffer [N] shaped like the parameters' and its views, one
// per parameter (AdamW's moments, the EMA's shadow: checkpoints save and
// restore them per parameter, through the views).
func (f *flat) like() (*ts.Tensor, []*ts.Tensor) {
	buf := f.param.MustZerosLike(false)
	views := make([]*ts.Tensor, len(f.shapes))
	for i := range views {
		views[i] = f.view(buf, i)
	}
	return buf, views
}

// zeroGrad zeroes every gradient in one op.
func (f *flat) zeroGrad() {
	torchx.NoGrad(func() { torchx.Inplace(f.grad, f.grad.MustZero_) })
}
