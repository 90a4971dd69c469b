package losses

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// meanSE is the mean and its standard error.
func meanSE(xs []float64) (float64, float64) {
	m := 0.0
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	v := 0.0
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1) / float64(len(xs)))
}

// NELBO through the public API, whose noise is sampled (uniformization for
// embedding), averages to the bound enumerated over every x_t at the same
// times, so that only the noise is random: S points spread over [0.2, 1),
// away from small t, where the 1/t-like weights make single draws noisy.
func TestNELBOMatchesExactBound(t *testing.T) {
	torchx.Lock()
	torchx.Seed(21)
	ll := forward.LogLinear{Eps: 1e-3}
	d := toydist.Dist3x2()
	cases := []struct {
		obj  string
		proc forward.Process
		edit func(*Config)
	}{
		{"mdlm", forward.NewAbsorbing(3, ll), nil},
		{"sedd", forward.NewAbsorbing(3, ll), nil},
		{"sedd", forward.NewUniform(3, ll), nil},
		{"sedd", toyEmbedding(t, ll), nil},
		{"d3pm", forward.NewUniform(3, ll), func(c *Config) { c.Steps, c.D3PMForm = 8, "mixture" }},
		{"d3pm", toyEmbedding(t, ll), func(c *Config) { c.Steps = 8 }},
	}
	const strata, reps = 128, 32
	u := make([]float64, strata)
	var nodes []node
	for i := range u {
		u[i] = 0.2 + 0.8*(float64(i)+0.5)/strata
		nodes = append(nodes, node{t: u[i], w: 1.0 / strata})
	}
	x0 := []int64{1, 2}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Name = c.obj
		if c.edit != nil {
			c.edit(&cfg)
		}
		obj, err := New(cfg, c.proc, 3)
		if err != nil {
			t.Fatal(err)
		}
		m := obj.(method)
		ex := toydist.NewExact(d, c.proc)
		net := denoiser(ex, false, true)
		if c.obj == "sedd" {
			net = scorer(ex, true)
		}
		snapped := make([]node, len(nodes))
		for i, nd := range nodes {
			snapped[i] = node{t: m.times([]float64{nd.t})[0], w: nd.w}
		}
		sum, prior := bounds(t, m, net, ex, [][]int64{x0}, snapped)
		want := sum[0] + prior[0]
		batch := ts.MustOfSlice(x0).MustView([]int64{1, 2}, true).MustRepeat([]int64{strata, 1}, true)
		var per []float64
		for range reps {
			got, err := obj.NELBO(net, batch, nil, u)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := meanSE(got)
			per = append(per, m)
		}
		mean, se := meanSE(per)
		t.Logf("%s/%s: Monte Carlo %.4f ± %.4f, enumerated %.4f", c.obj, c.proc.Name(), mean, se, want)
		if math.Abs(mean-want) > 4*se {
			t.Errorf("%s/%s: NELBO mean %.5f ± %.5f, enumerated bound %.5f", c.obj, c.proc.Name(), mean, se, want)
		}
		batch.MustDrop()
	}
}

// MDLM's continuous-time ELBO and D3PM's absorbing bound at T = 1000 agree
// within Monte Carlo error for a random network. Both see the same draws u
// and the same torch seed (common random numbers), so their masks nearly
// coincide and the paired difference has a small error. The draws stay in
// [0.01, 1): below, the 1/t weights make single draws so heavy-tailed that
// a standard error from a few hundred draws cannot be trusted (the exact
// toy test TestMDLMIsD3PMAbsorbing covers all of [0, 1]).
func TestMDLMMatchesD3PMAbsorbingMC(t *testing.T) {
	torchx.Lock()
	torchx.Seed(4)
	const v, b, l, reps = 6, 32, 16, 64
	proc := forward.NewAbsorbing(v, forward.LogLinear{Eps: 1e-3})
	mdlmObj, err := New(DefaultConfig(), proc, v)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.Steps = "d3pm", 1000
	d3pmObj, err := New(cfg, proc, v)
	if err != nil {
		t.Fatal(err)
	}
	net := timeless{newLinearNet(mdlmObj.Spec(), 8, 0.5, gotch.Double)}
	x0 := ts.MustRandint(v, []int64{b, l}, gotch.Int64, gotch.CPU)
	defer x0.MustDrop()
	perToken := func(obj Objective, seed int64, u []float64) float64 {
		torchx.Seed(seed)
		vals, err := obj.NELBO(net, x0, nil, u)
		if err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, x := range vals {
			total += x / (b * l)
		}
		return total
	}
	var as, ds, diffs []float64
	for r := range reps {
		u := make([]float64, b)
		for i := range u {
			u[i] = 0.01 + 0.99*(float64(i)+(float64(r)+0.5)/reps)/b
		}
		a, d := perToken(mdlmObj, int64(r), u), perToken(d3pmObj, int64(r), u)
		as, ds, diffs = append(as, a), append(ds, d), append(diffs, a-d)
	}
	a, sa := meanSE(as)
	d, sd := meanSE(ds)
	diff, se := meanSE(diffs)
	t.Logf("nats/token: mdlm %.4f ± %.4f, d3pm absorbing T=1000 %.4f ± %.4f, paired difference %.5f ± %.5f", a, sa, d, sd, diff, se)
	if math.Abs(diff) > 4*se {
		t.Errorf("mdlm − d3pm = %.5f ± %.5f", diff, se)
	}
}

// timeless hides σ from a network: d3pm's time input would otherwise make
// it a different model from mdlm's.
type timeless struct{ net Net }

func (n timeless) Forward(x, _ *ts.Tensor, train bool) *ts.Tensor {
	return n.net.Forward(x, nil, train)
}

// Loss is deterministic under a seed, reports the bound it minimises, and
// for ar (no noise) equals the weighted NELBO exactly.
func TestLossAgreesWithNELBO(t *testing.T) {
	torchx.Lock()
	torchx.Seed(9)
	const v = 7
	x0 := ts.MustRandint(v, []int64{3, 5}, gotch.Int64, gotch.CPU)
	w := ts.MustOfSlice([]float64{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0}).MustView([]int64{3, 5}, true)
	obj, err := New(Config{Name: "ar", D3PMForm: "mixture", TSampling: "uniform"}, nil, v)
	if err != nil {
		t.Fatal(err)
	}
	net := newLinearNet(obj.Spec(), 4, 1, gotch.Double)
	loss, st, err := obj.Loss(net, x0, w)
	if err != nil {
		t.Fatal(err)
	}
	per, err := obj.NELBO(net, x0, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := (per[0] + per[1] + per[2]) / 10
	if got := loss.Float64Values()[0]; math.Abs(got-want) > 1e-12 || st.Tokens != 10 || math.Abs(st.NELBO-want) > 1e-12 {
		t.Fatalf("ar loss %.12f, stats %+v; NELBO gives %.12f over 10 tokens", got, st, want)
	}

	cfg := DefaultConfig()
	cfg.Name, cfg.Steps = "d3pm", 20
	proc := forward.NewUniform(v, forward.LogLinear{Eps: 1e-3})
	d, err := New(cfg, proc, v)
	if err != nil {
		t.Fatal(err)
	}
	dn := newLinearNet(d.Spec(), 4, 1, gotch.Double)
	torchx.Seed(5)
	l1, s1, _ := d.Loss(dn, x0, w)
	torchx.Seed(5)
	l2, s2, _ := d.Loss(dn, x0, w)
	a, b := l1.Float64Values()[0], l2.Float64Values()[0]
	if a != b || s1 != s2 {
		t.Fatalf("same seed, different losses: %v %+v vs %v %+v", a, s1, b, s2)
	}
	if hybrid := s1.NELBO + 0.01*s1.CE; math.Abs(a-hybrid) > 1e-12 || s1.CE <= 0 || s1.Prior <= 0 {
		t.Fatalf("d3pm loss %.12f, stats %+v: want NELBO + λ·CE = %.12f", a, s1, hybrid)
	}
}

func TestAntitheticDraws(t *testing.T) {
	torchx.Lock()
	b := base{antithetic: true}
	u := b.draw(4)
	for i := 1; i < 4; i++ {
		if d := math.Mod(u[i]-u[0]+1, 1); math.Abs(d-float64(i)/4) > 1e-15 {
			t.Fatalf("antithetic draws %v are not spaced by 1/4", u)
		}
	}
}

// TestD3PMTermTotals: the three parts of D3PM's bound, each estimated by
// TermTotals, match the same parts enumerated on the toy: the prior
// exactly, the decoder (step 1) and the diffusion steps (2…T) within
// Monte Carlo error, so their sum is the bound.
func TestD3PMTermTotals(t *testing.T) {
	torchx.Lock()
	torchx.Seed(5)
	const steps, n, reps = 8, 256, 16
	d := toydist.Dist3x2()
	proc := forward.NewUniform(3, forward.LogLinear{Eps: 1e-3})
	for _, form := range []string{"proportional", "mixture"} {
		m := build(t, "d3pm", proc, 3, func(c *Config) { c.Steps, c.D3PMForm = steps, form })
		ex := toydist.NewExact(d, proc)
		net := denoiser(ex, form == "proportional", true)
		x0 := []int64{1, 2}
		grid := gridNodes(steps)
		recon, prior := bounds(t, m, net, ex, [][]int64{x0}, grid[:1])
		diffusion, _ := bounds(t, m, net, ex, [][]int64{x0}, grid[1:])
		batch := ts.MustOfSlice(x0).MustView([]int64{1, 2}, true).MustRepeat([]int64{n, 1}, true)
		u := make([]float64, n)
		for i := range u {
			u[i] = (float64(i) + 0.5) / n
		}
		per := map[string][]float64{}
		for range reps {
			got, tokens, err := m.(*d3pm).TermTotals(net, batch, nil, u)
			if err != nil {
				t.Fatal(err)
			}
			if tokens != n*2 {
				t.Fatalf("%s: %v tokens, want %d", form, tokens, n*2)
			}
			for k, v := range got {
				per[k] = append(per[k], v/n) // per sequence, as bounds sums
			}
		}
		if p, _ := meanSE(per[TermPrior]); math.Abs(p-prior[0]) > 1e-9 {
			t.Errorf("%s: prior %.10f, enumerated %.10f", form, p, prior[0])
		}
		for _, c := range []struct {
			term string
			want float64
		}{{TermRecon, recon[0]}, {TermDiffusion, diffusion[0]}} {
			mean, se := meanSE(per[c.term])
			t.Logf("%s %s: Monte Carlo %.5f ± %.5f, enumerated %.5f", form, c.term, mean, se, c.want)
			if math.Abs(mean-c.want) > 4*se+1e-9 {
				t.Errorf("%s %s: %.5f ± %.5f, enumerated %.5f", form, c.term, mean, se, c.want)
			}
		}
		batch.MustDrop()
	}
}
