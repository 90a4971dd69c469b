package losses

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"fmt"
	"math"
	"runtime/debug"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// paramNet is a free table of float64 logits, one row per input sequence:
// every output is its own parameter, so gradients can be checked entry by
// entry against finite differences.
type paramNet struct {
	in    int // input vocabulary: sequences are coded in base in
	theta *ts.Tensor
}

func (n *paramNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	size := x.MustSize()
	xs := x.Int64Values()
	idx := make([]int64, size[0])
	for r := range idx {
		idx[r] = int64(toydist.Code(xs[r*int(size[1]):(r+1)*int(size[1])], n.in))
	}
	it := ts.MustOfSlice(idx)
	defer it.MustDrop()
	return n.theta.MustIndexSelect(0, it, false)
}

// The gradient of every objective's bound (score entropy first among them)
// with respect to the network's outputs matches central finite
// differences.
func TestGradientsMatchFiniteDifferences(t *testing.T) {
	torchx.Lock()
	ll := forward.LogLinear{Eps: 1e-3}
	cases := []struct {
		obj  string
		proc forward.Process
		edit func(*Config)
	}{
		{"sedd", forward.NewAbsorbing(3, ll), nil},
		{"sedd", forward.NewUniform(3, ll), nil},
		{"sedd", toyEmbedding(t, ll), nil},
		{"mdlm", forward.NewAbsorbing(3, ll), nil},
		{"d3pm", forward.NewUniform(3, ll), func(c *Config) { c.D3PMForm = "mixture" }},
		{"d3pm", toyEmbedding(t, ll), func(c *Config) { c.D3PMForm = "proportional" }},
		{"ar", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.obj+"/"+procName(c.proc), func(t *testing.T) {
			torchx.Lock() // a subtest runs on its own goroutine
			torchx.Seed(11)
			m := build(t, c.obj, c.proc, 3, c.edit)
			spec := m.(Objective).Spec()
			rows := int64(math.Pow(float64(spec.VocabIn), 2))
			init := ts.MustRandn([]int64{rows, 2, int64(spec.VocabOut)}, gotch.Double, gotch.CPU)
			vals := init.Float64Values(true)
			// A fixed batch: every clean sequence, noised once at spread times.
			x0 := ts.MustOfSlice([]int64{0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2, 2, 0, 2, 1, 2, 2}).MustView([]int64{9, 2}, true)
			u := []float64{0.1, 0.35, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.97}
			tm := m.times(u)
			xt := m.noise(x0, tm, false)
			f := func(vals []float64, grad bool) (float64, []float64) {
				theta := ts.MustOfSlice(vals).MustView([]int64{rows, 2, int64(spec.VocabOut)}, true).MustSetRequiresGrad(grad, true)
				defer theta.MustDrop()
				net := &paramNet{in: spec.VocabIn, theta: theta}
				tr, err := m.terms(net, x0, xt, nil, tm, true)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.drop()
				total := tr.bound.MustSum(gotch.Double, false)
				defer total.MustDrop()
				if !grad {
					return total.Float64Values()[0], nil
				}
				total.MustBackward()
				g := theta.MustGrad(false)
				defer g.MustDrop()
				return total.Float64Values()[0], g.Float64Values()
			}
			_, grad := f(vals, true)
			// Every entry the batch touches (non-zero gradient), up to 40,
			// and a few it does not, whose finite difference must be 0.
			var nonzero, zero []int
			for j, g := range grad {
				if g != 0 && len(nonzero) < 40 {
					nonzero = append(nonzero, j)
				} else if g == 0 && len(zero) < 5 {
					zero = append(zero, j)
				}
			}
			if len(nonzero) < 10 {
				t.Fatalf("only %d non-zero gradient entries", len(nonzero))
			}
			for _, j := range append(nonzero, zero...) {
				const h = 1e-6
				plus := append([]float64(nil), vals...)
				minus := append([]float64(nil), vals...)
				plus[j] += h
				minus[j] -= h
				fp, _ := f(plus, false)
				fm, _ := f(minus, false)
				fd := (fp - fm) / (2 * h)
				if math.Abs(fd-grad[j]) > 1e-6*max(1, math.Abs(fd)) {
					t.Errorf("∂/∂θ[%d]: autograd %.10g, finite difference %.10g", j, grad[j], fd)
				}
			}
		})
	}
}

// No NaN or Inf at the ends of time, in the bound or its gradient, for
// every pair, with a random float32 network.
func TestEndsOfTime(t *testing.T) {
	torchx.Lock()
	torchx.Seed(5)
	ll := forward.LogLinear{Eps: 1e-3}
	geo := forward.Geometric{SigmaMin: 1e-4, SigmaMax: 20}
	table := ts.MustRandn([]int64{5, 4}, gotch.Float, gotch.CPU)
	emb, err := forward.NewEmbedding(table, 2, ll, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Drop()
	type pair struct {
		obj  string
		proc forward.Process
		edit func(*Config)
	}
	pairs := []pair{
		{"mdlm", forward.NewAbsorbing(5, ll), nil},
		{"mdlm", forward.NewAbsorbing(5, forward.Cosine{Eps: 1e-3}), func(c *Config) { c.Steps = 16 }},
		{"sedd", forward.NewAbsorbing(5, ll), nil},
		{"sedd", forward.NewUniform(5, geo), nil},
		{"sedd", emb, nil},
		{"ar", nil, nil},
	}
	for _, p := range []forward.Process{forward.NewAbsorbing(5, ll), forward.NewUniform(5, ll), emb} {
		for _, form := range d3pmForms {
			pairs = append(pairs, pair{"d3pm", p, func(c *Config) { c.D3PMForm = form; c.Steps = 50 }})
		}
	}
	x0 := ts.MustRandint(5, []int64{4, 6}, gotch.Int64, gotch.CPU)
	for _, p := range pairs {
		m := build(t, p.obj, p.proc, 5, p.edit)
		net := newLinearNet(m.(Objective).Spec(), 8, 1, gotch.Float)
		for _, u := range []float64{0, 1e-12, 1e-6, 0.5, 1 - 1e-9, 1} {
			tm := m.times([]float64{u, u, u, u})
			xt := m.noise(x0, tm, false)
			tr, err := m.terms(net, x0, xt, nil, tm, true)
			if err != nil {
				t.Fatal(err)
			}
			total := tr.bound.MustSum(gotch.Double, false)
			total.MustBackward()
			name := fmt.Sprintf("%s/%s u=%g", p.obj, procName(p.proc), u)
			if v := total.Float64Values()[0]; math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s: bound %v", name, v)
			}
			for i, w := range net.params() {
				g := w.MustGrad(false)
				if !g.MustDefined() {
					continue // σ's weights of a net without time input
				}
				for _, v := range g.Float64Values() {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("%s: gradient of parameter %d holds %v", name, i, v)
						break
					}
				}
				g.MustZero_()
				g.MustDrop()
			}
			total.MustDrop()
			tr.drop()
			xt.MustDrop()
		}
	}
}

// Loss and NELBO free every intermediate they create: with the garbage
// collector (and so gotch's finalizers) off, the number of live tensors is
// the same before and after a few training and evaluation steps.
func TestNoTensorLeaks(t *testing.T) {
	torchx.Lock()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	torchx.Seed(2)
	ll := forward.LogLinear{Eps: 1e-3}
	table := ts.MustRandn([]int64{12, 4}, gotch.Float, gotch.CPU)
	emb, err := forward.NewEmbedding(table, 3, ll, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Drop()
	x0 := ts.MustRandint(12, []int64{2, 8}, gotch.Int64, gotch.CPU)
	w := ts.MustOnes([]int64{2, 8}, gotch.Float, gotch.CPU)
	pairs := []struct {
		proc forward.Process
		cfg  Config
	}{
		{forward.NewAbsorbing(12, ll), Config{Name: "mdlm"}},
		{forward.NewUniform(12, ll), Config{Name: "d3pm", Steps: 10, D3PMForm: "mixture"}},
		{emb, Config{Name: "d3pm", Steps: 10, D3PMForm: "proportional"}},
		{forward.NewAbsorbing(12, ll), Config{Name: "sedd"}},
		{emb, Config{Name: "sedd"}},
		{nil, Config{Name: "ar"}},
	}
	for _, p := range pairs {
		cfg := DefaultConfig()
		cfg.Name, cfg.Steps = p.cfg.Name, p.cfg.Steps
		if p.cfg.D3PMForm != "" {
			cfg.D3PMForm = p.cfg.D3PMForm
		}
		obj, err := New(cfg, p.proc, 12)
		if err != nil {
			t.Fatal(err)
		}
		net := newLinearNet(obj.Spec(), 4, 1, gotch.Float)
		step := func() {
			loss, _, err := obj.Loss(net, x0, w)
			if err != nil {
				t.Fatal(err)
			}
			loss.MustBackward()
			loss.MustDrop()
			if _, err := obj.NELBO(net, x0, w, []float64{0.3, 0.8}); err != nil {
				t.Fatal(err)
			}
		}
		step()
		before := len(ts.ExistingTensors)
		for range 3 {
			step()
		}
		if after := len(ts.ExistingTensors); after != before {
			t.Errorf("%s/%s: %d live tensors before three steps, %d after", cfg.Name, procName(p.proc), before, after)
		}
	}
}

// procName is the process's name, "none" for nil.
func procName(p forward.Process) string {
	if p == nil {
		return "none"
	}
	return p.Name()
}
