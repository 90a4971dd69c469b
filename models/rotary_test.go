package models

import (
	"math"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestRotaryApply compares apply with the rotate-half formula written out
// for head width 4 (frequencies 1 and 1/100) at positions 2 and 3:
// (x1, x2, x3, x4) at angle θ_j = p·ω_j becomes
// (x1 cos θ1 − x3 sin θ1, x2 cos θ2 − x4 sin θ2, x3 cos θ1 + x1 sin θ1, x4 cos θ2 + x2 sin θ2),
// times 1/√4 for queries (index 0), unscaled for keys (index 1).
func TestRotaryApply(t *testing.T) {
	torchx.Lock()
	const d, l, offset = 4, 2, 2
	r := newRotary(8, d, gotch.CPU)
	in := []float32{
		1, 2, 3, 4, // query, position 2
		-1, 0.5, 2, -3, // query, position 3
		0.3, -0.7, 1.1, 0.2, // key, position 2
		5, 6, 7, 8, // key, position 3
	}
	qk := ts.MustOfSlice(in).MustView([]int64{2, 1, 1, l, d}, true)
	got := r.apply(qk, offset).Float64Values()
	omega := []float64{1, 0.01}
	for qkIdx, scale := range []float64{0.5, 1} {
		for p := range l {
			x := in[(qkIdx*l+p)*d:][:d]
			var want [d]float64
			for j := range 2 {
				theta := float64(offset+p) * omega[j]
				c, s := math.Cos(theta), math.Sin(theta)
				want[j] = scale * (float64(x[j])*c - float64(x[j+2])*s)
				want[j+2] = scale * (float64(x[j+2])*c + float64(x[j])*s)
			}
			for i, w := range want {
				if g := got[(qkIdx*l+p)*d+i]; math.Abs(g-w) > 1e-6 {
					t.Errorf("qk %d position %d component %d: got %.7f, want %.7f", qkIdx, offset+p, i, g, w)
				}
			}
		}
	}
}
