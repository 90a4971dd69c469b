package models

import (
	"math"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// rotary holds precomputed rotary position tables (RoPE, base 10000, the
// "rotate half" layout of GPT-NeoX and MDLM) for queries and keys at once:
// both tables are [2, 1, 1, maxLen, headDim], index 0 for queries and 1
// for keys, so one pass rotates the stacked [2, B, H, L, D] projections.
//
// Rotating x = [x1 | x2] at angle θ is x·cos θ + [−x2 | x1]·sin θ. The sign
// of rotate-half lives in the sine table ([−sin | sin]), so the forward pass
// only swaps halves. The query tables also carry the softmax scale 1/√D,
// which makes attention scores a plain q·kᵀ with no extra pass over them.
type rotary struct {
	cos, sin *ts.Tensor
}

// newRotary builds the tables on the given device.
func newRotary(maxLen, headDim int, device gotch.Device) rotary {
	half := headDim / 2
	n := maxLen * headDim
	cos := make([]float32, 2*n)
	sin := make([]float32, 2*n)
	qScale := 1 / math.Sqrt(float64(headDim))
	for p := range maxLen {
		for j := range half {
			theta := float64(p) * math.Pow(10000, -2*float64(j)/float64(headDim))
			c, s := math.Cos(theta), math.Sin(theta)
			row := p * headDim
			for qk, scale := range []float64{qScale, 1} {
				o := qk*n + row
				cos[o+j], cos[o+half+j] = float32(scale*c), float32(scale*c)
				sin[o+j], sin[o+half+j] = float32(-scale*s), float32(scale*s)
			}
		}
	}
	shape := []int64{2, 1, 1, int64(maxLen), int64(headDim)}
	table := func(v []float32) *ts.Tensor {
		return ts.MustOfSlice(v).MustView(shape, true).MustTo(device, true)
	}
	return rotary{cos: table(cos), sin: table(sin)}
}

// apply rotates qk [2, B, H, L, D] (any strides whose last dimension is
// dense) as positions offset … offset+L−1 and returns a new contiguous
// tensor of the same shape.
//
// The halves are swapped by viewing D as [2, D/2] and flipping that axis:
// one copy forward and one backward (the flip of the gradient), where a
// cat of two narrows costs, in the backward, a zero-filled gradient of
// the whole input per narrow and a sum of the two.
func (r rotary) apply(qk *ts.Tensor, offset int) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := qk.MustSize()
	l, half := size[3], size[4]/2
	cos := s.T(r.cos.MustNarrow(3, int64(offset), l, false))
	sin := s.T(r.sin.MustNarrow(3, int64(offset), l, false))
	pairs := s.T(qk.MustView([]int64{size[0], size[1], size[2], l, 2, half}, false))
	swapped := s.T(s.T(pairs.MustFlip([]int64{4}, false)).MustView(size, false))
	// Out of place on purpose: gotch's in-place ops (X_) replace the
	// receiver's C++ handle without freeing the old one, which would keep
	// this tensor and its whole autograd graph alive forever.
	return s.T(swapped.MustMul(sin, false)).MustAddcmul(qk, cos, false)
}
