package torchx

// #include <stdlib.h>
// extern void at_run_backward(void **tensors, int ntensors, void **inputs, int ninputs,
//                             void **outputs, int keep_graph, int create_graph);
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// Grads returns ∂(Σ roots)/∂inputs for scalar roots, as
// torch.autograd.grad(roots, inputs) does: the gradients come back as new
// tensors and nothing is accumulated into the inputs' .grad. An input that
// the roots do not depend on gets nil. The graph is freed. The caller must
// be Locked.
//
// It calls libtch's at_run_backward itself because gotch v0.9.1's
// ts.RunBackward passes its root and input arrays as their first element
// only and its outputs as separately allocated pointers, which the C side
// writes as one array: wrong for more than one input.
func Grads(roots, inputs []*ts.Tensor) ([]*ts.Tensor, error) {
	if len(roots) == 0 || len(inputs) == 0 {
		return nil, fmt.Errorf("torchx: Grads of %d roots with respect to %d inputs", len(roots), len(inputs))
	}
	r, in, out := cArray(roots), cArray(inputs), cArray(make([]*ts.Tensor, len(inputs)))
	defer C.free(unsafe.Pointer(r))
	defer C.free(unsafe.Pointer(in))
	defer C.free(unsafe.Pointer(out))
	C.at_run_backward(r, C.int(len(roots)), in, C.int(len(inputs)), out, 0, 0)
	if err := ts.TorchErr(); err != nil {
		return nil, fmt.Errorf("torchx: grads: %w", err)
	}
	grads := make([]*ts.Tensor, len(inputs))
	for i, p := range unsafe.Slice(out, len(inputs)) {
		g := ts.FromCtensor(p)
		if g.MustDefined() {
			grads[i] = g
		} else {
			g.MustDrop()
		}
	}
	return grads, nil
}

// cArray is a C array of the tensors' C handles (NULL for a nil
// tensor); the caller frees it.
func cArray(xs []*ts.Tensor) *unsafe.Pointer {
	a := (*unsafe.Pointer)(C.malloc(C.size_t(len(xs)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
	hs := unsafe.Slice(a, len(xs))
	for i, x := range xs {
		hs[i] = nil
		if x != nil {
			hs[i] = x.Ctensor()
		}
	}
	return a
}

// DefineGrads makes the gradients of params (leaves that require grad)
// defined, adding zeros (a backward pass of 0·Σ p): autograd accumulates
// into a defined gradient in place, so a gradient can then be set onto a
// buffer or added to. Grad mode must be on.
func DefineGrads(params []*ts.Tensor) error {
	s := NewScope()
	defer s.Close()
	var zero *ts.Tensor
	for _, p := range params {
		term := s.T(s.T(p.MustSum(p.DType(), false)).MustMulScalar(ts.FloatScalar(0), false))
		if zero == nil {
			zero = term
		} else {
			zero = s.T(zero.MustAdd(term, false))
		}
	}
	if zero == nil {
		return nil
	}
	if err := zero.Backward(); err != nil {
		return fmt.Errorf("torchx: define the gradients (grad mode must be on): %w", err)
	}
	return nil
}
