package torchx

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// BenchmarkOpOverhead is the fixed cost of one tensor op through gotch
// on a one-element tensor, where libtorch's own work is nearly nothing:
// the cgo calls, the new Tensor's Go bookkeeping and its release.
// "alloc" returns a new tensor (and drops it), "inplace" writes into an
// existing one, "scalar" adds a fresh C++ scalar each time, as
// ts.FloatScalar(x) in a hot path does.
//
//	go test ./torchx -run '^$' -bench OpOverhead
func BenchmarkOpOverhead(b *testing.B) {
	Lock()
	x := ts.MustOnes([]int64{1}, gotch.Float, gotch.CPU)
	y := ts.MustOnes([]int64{1}, gotch.Float, gotch.CPU)
	b.Run("alloc", func(b *testing.B) {
		Lock()
		for range b.N {
			z := x.MustAdd(y, false)
			z.MustDrop()
		}
	})
	b.Run("inplace", func(b *testing.B) {
		Lock()
		for range b.N {
			x.MustAdd_(y)
		}
	})
	b.Run("scalar", func(b *testing.B) {
		Lock()
		for range b.N {
			s := ts.FloatScalar(1)
			x.MustAddScalar_(s)
			s.MustDrop()
		}
	})
}
