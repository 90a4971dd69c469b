package train

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// TestFusedStepEqualsOps runs the fused CPU step and the tensor ops (the
// CUDA path) side by side for six steps — a buffer big enough to be split
// across two goroutines, each with a scalar tail; with and without weight decay
// and EMA; both branches of lerp (weights below and above ½); one step at
// lr = 0 — and requires the same parameters, moments and averages to 1e-7
// after every step taken from the same state (the ops' state is copied to
// the fused side before each step, so that rounding does not compound).
// Parameters stay within ±1, where a float32 ulp is at most 6·10⁻⁸: the
// two may differ by one rounding (ATen's vectorised lerp uses a fused
// multiply-add), not by two.
func TestFusedStepEqualsOps(t *testing.T) {
	const n = 3<<16 + 14 // two halves of 98311: 24577 SIMD quads and a scalar tail of 3 each
	cases := []struct {
		beta1, wd, ema float64
	}{
		{0.9, 0.05, 0.99}, // lerp weights 0.1, 0.001, 0.01
		{0.3, 0, 0.4},     // 0.7 and 0.6: lerp's other branch
		{0.9, 0.1, 0},     // no EMA
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("beta1=%v,wd=%v,ema=%v", c.beta1, c.wd, c.ema), func(t *testing.T) {
			torchx.Lock()
			rng := rand.New(rand.NewPCG(1, 2))
			uniform := func(a float32) *ts.Tensor { // on [−a, a)
				x := make([]float32, n)
				for i := range x {
					x[i] = a * (2*rng.Float32() - 1)
				}
				return ts.MustOfSlice(x)
			}
			init := uniform(0.5)
			defer init.MustDrop()
			sides := make([]struct {
				f   *flat
				opt *adamW
				e   *ema
			}, 2)
			for i := range sides {
				p := nn.NewVarStore(gotch.CPU).Root().MustNewVar("p", []int64{n}, nn.NewConstInit(0))
				torchx.NoGrad(func() { p.Copy_(init) })
				f, err := newFlat([]*ts.Tensor{p})
				if err != nil {
					t.Fatal(err)
				}
				sides[i].f, sides[i].opt = f, newAdamW(f, c.beta1, 0.999, 1e-8, c.wd)
				if c.ema > 0 {
					sides[i].e = newEMA(f, c.ema)
				}
			}
			if !sides[0].opt.fused {
				t.Fatal("a CPU float32 flat buffer should take the fused step")
			}
			sides[0].opt.threads = 2 // two goroutines whatever the machine
			withOps(sides[1].opt)
			for step, lr := range []float64{0.1, 0.05, 0, 0.02, 0.01, 0.03} {
				torchx.NoGrad(func() {
					sides[0].f.param.Copy_(sides[1].f.param)
					sides[0].opt.mBuf.Copy_(sides[1].opt.mBuf)
					sides[0].opt.vBuf.Copy_(sides[1].opt.vBuf)
					if c.ema > 0 {
						sides[0].e.buf.Copy_(sides[1].e.buf)
					}
				})
				g := uniform(1)
				for _, s := range sides {
					torchx.NoGrad(func() { s.f.grad.Copy_(g) })
					s.opt.step(lr, s.e)
				}
				g.MustDrop()
				bufs := []struct {
					what     string
					got, ref *ts.Tensor
				}{
					{"parameters", sides[0].f.param, sides[1].f.param},
					{"m", sides[0].opt.mBuf, sides[1].opt.mBuf},
					{"v", sides[0].opt.vBuf, sides[1].opt.vBuf},
				}
				if c.ema > 0 {
					bufs = append(bufs, struct {
						what     string
						got, ref *ts.Tensor
					}{"EMA", sides[0].e.buf, sides[1].e.buf})
				}
				for _, b := range bufs {
					if d := maxDiff(values(b.got), values(b.ref)); d > 1e-7 {
						t.Errorf("step %d (lr %g): %s: fused and ops differ by %g", step+1, lr, b.what, d)
					}
				}
			}
		})
	}
}
