package losses

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"fmt"
	"math"
	"testing"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// scorer is the exact score model of a toy for sedd: log true ratios, with
// SEDD's absorbing shift undone so that the objective's shift restores them.
func scorer(ex *toydist.Exact, wobbly bool) *toydist.TableNet {
	n := ex.Proc.NumStates()
	return &toydist.TableNet{Out: n, Fn: func(x []int64, sigma float64) [][]float64 {
		out := toydist.Logs(ex.Scores(x, sigma))
		for i := range out {
			for y := range out[i] {
				if ex.Proc.Name() == "absorbing" {
					out[i][y] += math.Log(math.Expm1(sigma)) + math.Log(float64(ex.D.V))
				}
				if wobbly {
					out[i][y] += wobble(x, i, y)
				}
			}
		}
		return out
	}}
}

// With the exact model, the continuous-time bounds equal −log p(x0) for
// every x0 (up to the prior's mismatch, O(ε) here with ε = 1e-6).
func TestContinuousBoundsExactForEveryX0(t *testing.T) {
	torchx.Lock()
	const eps = 1e-6
	ll := forward.LogLinear{Eps: eps}
	cases := []struct {
		name, obj string
		d         toydist.Dist
		proc      forward.Process
	}{
		{"mdlm/absorbing/3x2", "mdlm", toydist.Dist3x2(), forward.NewAbsorbing(3, ll)},
		{"mdlm/absorbing/4x3", "mdlm", toydist.Dist4x3(), forward.NewAbsorbing(4, ll)},
		{"mdlm/absorbing-cosine/3x2", "mdlm", toydist.Dist3x2(), forward.NewAbsorbing(3, forward.Cosine{Eps: eps})},
		{"sedd/absorbing/3x2", "sedd", toydist.Dist3x2(), forward.NewAbsorbing(3, ll)},
		{"sedd/uniform/3x2", "sedd", toydist.Dist3x2(), forward.NewUniform(3, ll)},
		{"sedd/embedding/3x2", "sedd", toydist.Dist3x2(), toyEmbedding(t, forward.Geometric{SigmaMin: 1e-7, SigmaMax: 40})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			torchx.Lock() // a subtest runs on its own goroutine
			ex := toydist.NewExact(c.d, c.proc)
			m := build(t, c.obj, c.proc, c.d.V, nil)
			net := denoiser(ex, false, false)
			if c.obj == "sedd" {
				net = scorer(ex, false)
			}
			x0s := toydist.Seqs(c.d.V, c.d.L)
			if len(x0s) > 16 {
				x0s = x0s[:16] // the 4x3 toy: 16 of its 64 sequences are plenty
			}
			worst := 0.0
			for k, got := range exactBounds(t, m, 0, net, ex, x0s) {
				want := -math.Log(c.d.P[toydist.Code(x0s[k], c.d.V)])
				worst = max(worst, math.Abs(got-want))
				if math.Abs(got-want) > 2e-5 {
					t.Errorf("x0 = %v: bound %.8f, −log p(x0) = %.8f", x0s[k], got, want)
				}
			}
			t.Logf("%s: max |bound − NLL| over x0 = %.2g", c.name, worst)
		})
	}
}

// At the default ε = 1e-3 the exact models' bounds stay within O(ε) of the
// entropy, and above it on average for wrong (wobbled) models.
func TestBoundsAtDefaultEps(t *testing.T) {
	torchx.Lock()
	ll := forward.LogLinear{Eps: 1e-3}
	d := toydist.Dist3x2()
	h := d.Entropy()
	cases := []struct {
		name, obj string
		proc      forward.Process
	}{
		{"mdlm/absorbing", "mdlm", forward.NewAbsorbing(3, ll)},
		{"sedd/absorbing", "sedd", forward.NewAbsorbing(3, ll)},
		{"sedd/uniform", "sedd", forward.NewUniform(3, ll)},
		// Not geometric here: its α(0) = e^{−σ_min} < 1, and the
		// continuous bounds omit the reconstruction from σ_min (as SEDD
		// does), which puts them O(σ_min·log(1/σ_min)) per token below the
		// truth: 1.3e-3 nats under the entropy on this toy at σ_min = 1e-4.
		{"sedd/embedding", "sedd", toyEmbedding(t, ll)},
	}
	for _, c := range cases {
		ex := toydist.NewExact(d, c.proc)
		m := build(t, c.obj, c.proc, d.V, nil)
		good, bad := denoiser(ex, false, false), denoiser(ex, false, true)
		if c.obj == "sedd" {
			good, bad = scorer(ex, false), scorer(ex, true)
		}
		exactMean := mean(d, exactBounds(t, m, 0, good, ex, toydist.Seqs(d.V, d.L)))
		wrongMean := mean(d, exactBounds(t, m, 0, bad, ex, toydist.Seqs(d.V, d.L)))
		t.Logf("%-16s H = %.5f  exact model %.5f  wobbled model %.5f", c.name, h, exactMean, wrongMean)
		if math.Abs(exactMean-h) > 1e-2 {
			t.Errorf("%s: exact model's mean bound %.5f, entropy %.5f", c.name, exactMean, h)
		}
		if wrongMean < h {
			t.Errorf("%s: wobbled model's mean bound %.5f is below the entropy %.5f", c.name, wrongMean, h)
		}
	}
}

// Score entropy is exactly 0 when the scores are the conditional ratios
// r_y = q(y|x0)/q(x_t|x0), at every t, for every process.
func TestScoreEntropyZeroAtTrueRatios(t *testing.T) {
	torchx.Lock()
	ll := forward.LogLinear{Eps: 1e-3}
	for _, proc := range []forward.Process{forward.NewAbsorbing(3, ll), forward.NewUniform(3, ll), toyEmbedding(t, ll)} {
		ex := toydist.NewExact(toydist.Dist3x2(), proc)
		m := build(t, "sedd", proc, 3, nil)
		for _, x0 := range toydist.Seqs(3, 2) {
			net := &toydist.TableNet{Out: proc.NumStates(), Fn: func(x []int64, sigma float64) [][]float64 {
				tr := ex.Trans(sigma)
				out := make([][]float64, len(x))
				for i := range x {
					for y := range proc.NumStates() {
						v := math.Log(tr[x0[i]][y] / tr[x0[i]][x[i]])
						if proc.Name() == "absorbing" {
							v += math.Log(math.Expm1(sigma)) + math.Log(3)
						}
						out[i] = append(out[i], v)
					}
				}
				return out
			}}
			for _, tm := range []float64{1e-4, 0.3, 0.9, 1} {
				sum, _ := bounds(t, m, net, ex, [][]int64{x0}, []node{{t: tm, w: 1}})
				got := sum[0]
				if math.Abs(got) > 1e-6 {
					t.Errorf("%s x0=%v t=%g: score entropy %.3g at the true ratios", proc.Name(), x0, tm, got)
				}
			}
		}
	}
}

// D3PM: each form with its own optimal output gives the same bound (the
// proportional form's optimum is the marginal divided by Q̄_i[v,x_i], and
// the marginal itself at the first step, where p_θ(x0|x_1) = p̃); with
// exact marginals the mixture form falls towards the entropy as T grows,
// while the proportional form with the same (wrong for it) output does not.
func TestD3PMForms(t *testing.T) {
	torchx.Lock()
	d := toydist.Dist3x2()
	h := d.Entropy()
	ll := forward.LogLinear{Eps: 1e-3}
	procs := []forward.Process{forward.NewUniform(3, ll), toyEmbedding(t, forward.Geometric{SigmaMin: 1e-4, SigmaMax: 20}), forward.NewAbsorbing(3, ll)}
	for _, proc := range procs {
		ex := toydist.NewExact(d, proc)
		var prevMix float64
		for _, steps := range []int{1, 4, 16, 64, 256} {
			mix := build(t, "d3pm", proc, 3, func(c *Config) { c.Steps, c.D3PMForm = steps, "mixture" })
			prop := build(t, "d3pm", proc, 3, func(c *Config) { c.Steps, c.D3PMForm = steps, "proportional" })
			x0s := toydist.Seqs(3, 2)
			a := exactBounds(t, mix, steps, denoiser(ex, false, false), ex, x0s)
			first := proc.Schedule().Sigma(1 / float64(steps))
			b := exactBounds(t, prop, steps, denoiserFirst(ex, true, false, first), ex, x0s)
			for k := range x0s {
				// The network sees σ in float32, so the two optima differ
				// by rounding; the bounds agree to second order in it.
				if math.Abs(a[k]-b[k]) > 1e-7 {
					t.Errorf("%s T=%d x0=%v: mixture(marginals) %.10f ≠ proportional(its optimum) %.10f", proc.Name(), steps, x0s[k], a[k], b[k])
				}
			}
			mixMean, propOptMean := mean(d, a), mean(d, b)
			propMargMean := mean(d, exactBounds(t, prop, steps, denoiser(ex, false, false), ex, x0s))
			t.Logf("%-9s T=%-3d H=%.4f  mixture(marginals) %.4f  proportional(its optimum) %.4f  proportional(marginals) %.4f",
				proc.Name(), steps, h, mixMean, propOptMean, propMargMean)
			if mixMean < h-1e-9 {
				t.Errorf("%s T=%d: mean bound %.6f below the entropy %.6f", proc.Name(), steps, mixMean, h)
			}
			if steps > 1 && mixMean > prevMix+1e-9 {
				t.Errorf("%s: mixture bound rose from %.6f to %.6f at T=%d", proc.Name(), prevMix, mixMean, steps)
			}
			if proc.Name() == "absorbing" && math.Abs(propMargMean-mixMean) > 1e-9 {
				t.Errorf("absorbing T=%d: forms differ (%.10f vs %.10f)", steps, propMargMean, mixMean)
			}
			if proc.Name() != "absorbing" && propMargMean < mixMean {
				t.Errorf("%s T=%d: proportional form with marginals %.6f beats its optimum %.6f", proc.Name(), steps, propMargMean, mixMean)
			}
			prevMix = mixMean
		}
		if prevMix-h > 0.08 {
			t.Errorf("%s: mixture bound at T=256 is %.4f, entropy %.4f", proc.Name(), prevMix, h)
		}
	}
}

// MDLM's finite-T bound is D3PM's absorbing bound, exactly, for any
// denoiser that ignores σ; as T grows both approach MDLM's continuous-time
// ELBO.
func TestMDLMIsD3PMAbsorbing(t *testing.T) {
	torchx.Lock()
	d := toydist.Dist3x2()
	proc := forward.NewAbsorbing(3, forward.LogLinear{Eps: 1e-3})
	ex := toydist.NewExact(d, proc)
	net := denoiser(ex, false, true) // wrong model, no time dependence
	cont := build(t, "mdlm", proc, 3, nil)
	x0s := [][]int64{{0, 0}, {1, 2}, {2, 1}}
	want := exactBounds(t, cont, 0, net, ex, x0s)
	gap := map[int]float64{}
	for _, steps := range []int{1, 10, 100, 1000} {
		md := build(t, "mdlm", proc, 3, func(c *Config) { c.Steps = steps })
		dp := build(t, "d3pm", proc, 3, func(c *Config) { c.Steps = steps })
		a := exactBounds(t, md, steps, net, ex, x0s)
		b := exactBounds(t, dp, steps, net, ex, x0s)
		worst := 0.0
		for k := range x0s {
			if math.Abs(a[k]-b[k]) > 1e-9 {
				t.Errorf("x0=%v T=%d: mdlm %.10f, d3pm absorbing %.10f", x0s[k], steps, a[k], b[k])
			}
			worst = max(worst, math.Abs(a[k]-want[k]))
		}
		t.Logf("T=%-4d max over x0 of |finite-T − continuous| = %.2e", steps, worst)
		gap[steps] = worst
	}
	// The gap closes as 1/T.
	if r := gap[100] / gap[1000]; gap[1000] > 2.5e-3 || r < 9 || r > 11 {
		t.Errorf("gap to continuous time: %.3g at T=100, %.3g at T=1000; want ≈ c/T", gap[100], gap[1000])
	}
}

// The D3PM bound is a bound on the model's own likelihood for every x0:
// −log p_θ(x0), computed exactly by running the model's reverse chain over
// all states from the prior, never exceeds it, for either form.
func TestD3PMBoundsModelLikelihood(t *testing.T) {
	torchx.Lock()
	d := toydist.Dist3x2()
	ll := forward.LogLinear{Eps: 1e-3}
	for _, proc := range []forward.Process{forward.NewUniform(3, ll), forward.NewAbsorbing(3, ll), toyEmbedding(t, forward.Geometric{SigmaMin: 1e-4, SigmaMax: 20})} {
		ex := toydist.NewExact(d, proc)
		net := denoiser(ex, false, true)
		for _, form := range []string{"mixture", "proportional"} {
			for _, steps := range []int{1, 3, 8} {
				m := build(t, "d3pm", proc, 3, func(c *Config) { c.Steps, c.D3PMForm = steps, form })
				nll := modelNLL(t, proc, net, steps, form, d.L)
				for k, b := range exactBounds(t, m, steps, net, ex, toydist.Seqs(3, 2)) {
					if b < nll[k]-1e-9 {
						t.Errorf("%s %s T=%d x0=%v: bound %.8f < model NLL %.8f", proc.Name(), form, steps, toydist.Seqs(3, 2)[k], b, nll[k])
					}
				}
			}
		}
	}
}

// The autoregressive NLL with the exact conditionals is −log p(x0).
func TestARExact(t *testing.T) {
	torchx.Lock()
	for _, d := range []toydist.Dist{toydist.Dist3x2(), toydist.Dist4x3()} {
		net := &toydist.TableNet{Out: d.V, Fn: func(x []int64, _ float64) [][]float64 {
			// x is [BOS, x0_0, …]; row l is log p(x0_l | x0_<l).
			out := make([][]float64, d.L)
			for l := range d.L {
				probs := make([]float64, d.V)
				for c, s := range toydist.Seqs(d.V, d.L) {
					match := true
					for j := 0; j < l; j++ {
						match = match && s[j] == x[j+1]
					}
					if match {
						probs[s[l]] += d.P[c]
					}
				}
				out[l] = toydist.Logs([][]float64{probs})[0]
			}
			return out
		}}
		obj, err := New(Config{Name: "ar", D3PMForm: "mixture", TSampling: "uniform"}, nil, d.V)
		if err != nil {
			t.Fatal(err)
		}
		for code, x0 := range toydist.Seqs(d.V, d.L) {
			x := seqTensor(x0)
			got, err := obj.NELBO(net, x, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := -math.Log(d.P[code]); math.Abs(got[0]-want) > 1e-12 {
				t.Fatalf("%dx%d x0=%v: AR NLL %.15f, want %.15f", d.V, d.L, x0, got[0], want)
			}
			x.MustDrop()
		}
	}
}

func ExampleSpecFor() {
	for _, pair := range [][2]string{{"absorbing", "mdlm"}, {"uniform", "d3pm"}, {"absorbing", "sedd"}, {"none", "ar"}} {
		spec, _ := SpecFor(pair[0], pair[1], 100)
		fmt.Printf("%s/%s: %+v\n", pair[1], pair[0], spec)
	}
	// Output:
	// mdlm/absorbing: {VocabIn:101 VocabOut:100 Causal:false TimeCond:false BlockSize:0 EmbedDim:0}
	// d3pm/uniform: {VocabIn:100 VocabOut:100 Causal:false TimeCond:true BlockSize:0 EmbedDim:0}
	// sedd/absorbing: {VocabIn:101 VocabOut:101 Causal:false TimeCond:true BlockSize:0 EmbedDim:0}
	// ar/none: {VocabIn:101 VocabOut:100 Causal:true TimeCond:false BlockSize:0 EmbedDim:0}
}

// mean is the data-weighted mean of per-sequence values in code order.
func mean(d toydist.Dist, vals []float64) float64 {
	m := 0.0
	for k, v := range vals {
		m += d.P[k] * v
	}
	return m
}
