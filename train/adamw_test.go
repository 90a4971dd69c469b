package train

import (
	"fmt"
	"math"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestAdamWMatchesHandComputation runs three AdamW steps (weight decay,
// bias correction, a different lr each step) on
// f(a, b) = (a−1)² + 3ab + b⁴ and compares with the update rule evaluated
// by hand in float64.
func TestAdamWMatchesHandComputation(t *testing.T) {
	for _, fused := range []bool{true, false} {
		t.Run(fmt.Sprintf("fused=%v", fused), func(t *testing.T) { testAdamWHand(t, fused) })
	}
}

func testAdamWHand(t *testing.T, fused bool) {
	torchx.Lock()
	const b1, b2, eps, wd = 0.9, 0.999, 1e-8, 0.1
	lrs := []float64{0.1, 0.05, 0.02}
	vs := nn.NewVarStore(gotch.CPU)
	// float32 variables (a nonzero ConstInit gives float64): the trainer's dtype.
	a := vs.Root().MustNewVar("a", []int64{1}, nn.NewConstInit(0))
	b := vs.Root().MustNewVar("b", []int64{1}, nn.NewConstInit(0))
	torchx.NoGrad(func() {
		a.Copy_(ts.MustOfSlice([]float32{0.5}))
		b.Copy_(ts.MustOfSlice([]float32{-0.3}))
	})
	f, err := newFlat([]*ts.Tensor{a, b})
	if err != nil {
		t.Fatal(err)
	}
	opt := newAdamW(f, b1, b2, eps, wd)
	if !opt.fused {
		t.Fatalf("a %v flat buffer should take the fused step", f.param.DType())
	}
	if !fused {
		withOps(opt)
	}

	p := []float64{0.5, -0.3}
	m, v := []float64{0, 0}, []float64{0, 0}
	for step, lr := range lrs {
		f.zeroGrad()
		s := torchx.NewScope()
		am1 := s.T(a.MustSubScalar(ts.FloatScalar(1), false))
		f := s.T(am1.MustMul(am1, false))
		f = s.T(f.MustAdd(s.T(s.T(a.MustMul(b, false)).MustMulScalar(ts.FloatScalar(3), false)), false))
		b4 := s.T(s.T(b.MustMul(b, false)).MustMul(s.T(b.MustMul(b, false)), false))
		f = s.T(f.MustAdd(b4, false))
		s.T(f.MustSum(gotch.Float, false)).MustBackward()
		s.Close()
		opt.step(lr, nil)

		g := []float64{2*(p[0]-1) + 3*p[1], 3*p[0] + 4*p[1]*p[1]*p[1]}
		n := float64(step + 1)
		for i := range p {
			p[i] *= 1 - lr*wd
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			mhat, vhat := m[i]/(1-math.Pow(b1, n)), v[i]/(1-math.Pow(b2, n))
			p[i] -= lr * mhat / (math.Sqrt(vhat) + eps)
		}
		got := []float64{values(a)[0], values(b)[0]}
		for i := range p {
			if math.Abs(got[i]-p[i]) > 1e-6 {
				t.Fatalf("step %d param %d: AdamW gives %.9f, hand computation %.9f", step+1, i, got[i], p[i])
			}
		}
	}
}

func TestLRSchedule(t *testing.T) {
	base := Config{LR: 1e-3, Warmup: 10, Steps: 110, MinLRRatio: 0.1}
	cases := []struct {
		schedule string
		step     int
		want     float64
	}{
		{"constant", 1, 1e-4},
		{"constant", 5, 5e-4},
		{"constant", 10, 1e-3},
		{"constant", 110, 1e-3},
		{"cosine", 1, 1e-4},
		{"cosine", 10, 1e-3},
		{"cosine", 60, 1e-4 + 9e-4*0.5},                         // halfway: cos(π/2) = 0
		{"cosine", 35, 1e-4 + 9e-4*0.5*(1+math.Cos(math.Pi/4))}, // a quarter of the decay
		{"cosine", 110, 1e-4},
	}
	for _, c := range cases {
		cfg := base
		cfg.Schedule = c.schedule
		if got := cfg.LRAt(c.step); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%s LRAt(%d) = %v, want %v", c.schedule, c.step, got, c.want)
		}
	}
	noWarmup := Config{LR: 2e-3, Steps: 100, Schedule: "constant"}
	if got := noWarmup.LRAt(1); got != 2e-3 {
		t.Errorf("LRAt(1) without warmup = %v, want 2e-3", got)
	}
}

func TestClipGradNorm(t *testing.T) {
	torchx.Lock()
	// Gradients (0.03, 0.04) and (0.12): global norm 0.13, small enough
	// that torch's 1e-6 in the coefficient shows.
	g0 := []float32{0.03, 0.04, 0.12}
	cases := []struct {
		maxNorm, wantScale float64
	}{
		{0, 1},                         // off: measure only
		{1, 1},                         // below the limit: untouched
		{0.01, 0.01 / (0.13 + 1e-6)},   // torch's coefficient
		{0.065, 0.065 / (0.13 + 1e-6)}, // halves
	}
	for _, c := range cases {
		vs := nn.NewVarStore(gotch.CPU)
		p1 := vs.Root().MustNewVar("p1", []int64{2}, nn.NewConstInit(1))
		p2 := vs.Root().MustNewVar("p2", []int64{1}, nn.NewConstInit(1))
		unused := vs.Root().MustNewVar("unused", []int64{3}, nn.NewConstInit(1))
		l1 := p1.MustMul(ts.MustOfSlice(g0[:2]), false).MustSum(gotch.Float, true)
		l2 := p2.MustMul(ts.MustOfSlice(g0[2:]), false).MustSum(gotch.Float, true)
		l1.MustAdd(l2, true).MustBackward()
		params := []*ts.Tensor{p1, p2, unused}
		if norm := clipGradNorm(params, c.maxNorm); math.Abs(norm-0.13) > 1e-8 {
			t.Errorf("maxNorm %v: norm %v, want 0.13", c.maxNorm, norm)
		}
		got := append(values(p1.MustGrad(false)), values(p2.MustGrad(false))...)
		for i, g := range g0 {
			if want := float64(g) * c.wantScale; math.Abs(got[i]-want) > 2e-7*want {
				t.Errorf("maxNorm %v: gradient %d = %.9g, want %.9g", c.maxNorm, i, got[i], want)
			}
		}
	}
}

// TestEMAClosedForm feeds known parameter values x_1..x_n and checks
// e_n = dⁿ·e_0 + (1−d)·Σ_k d^(n−k)·x_k, then that swap exchanges and
// restores.
func TestEMAClosedForm(t *testing.T) {
	torchx.Lock()
	const d = 0.8
	vs := nn.NewVarStore(gotch.CPU)
	p := vs.Root().MustNewVar("p", []int64{2}, nn.NewConstInit(1))
	f, err := newFlat([]*ts.Tensor{p})
	if err != nil {
		t.Fatal(err)
	}
	e := newEMA(f, d)
	xs := [][]float64{{2, -1}, {0.5, 4}, {-3, 0}, {1, 1}}
	for _, x := range xs {
		torchx.NoGrad(func() { p.Copy_(ts.MustOfSlice([]float32{float32(x[0]), float32(x[1])})) })
		e.update()
	}
	n := len(xs)
	for i := 0; i < 2; i++ {
		want := math.Pow(d, float64(n)) * 1
		for k, x := range xs {
			want += (1 - d) * math.Pow(d, float64(n-1-k)) * x[i]
		}
		if got := values(e.shadow[0])[i]; math.Abs(got-want) > 1e-6 {
			t.Errorf("EMA[%d] = %.9f, closed form %.9f", i, got, want)
		}
	}
	avg := values(e.shadow[0])
	e.swap()
	if got := values(p); got[0] != avg[0] || got[1] != avg[1] {
		t.Errorf("after swap the parameter holds %v, want the average %v", got, avg)
	}
	e.swap()
	if got := values(p); got[0] != 1 || got[1] != 1 {
		t.Errorf("after swapping back the parameter holds %v, want [1 1]", got)
	}
	if !p.MustRequiresGrad() {
		t.Error("swap turned off requires_grad")
	}
}
