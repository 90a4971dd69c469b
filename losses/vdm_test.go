package losses

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/internal/toydist"
	"github.com/dlmlab/difflm/torchx"
)

// gaussExpect is E[f(ε)] for ε ~ N(0, 1) by the trapezoid rule on ±9.
func gaussExpect(f func(float64) float64) float64 {
	const h = 0.005
	sum := 0.0
	for e := -9.0; e <= 9; e += h {
		sum += f(e) * math.Exp(-e*e/2)
	}
	return sum * h / math.Sqrt(2*math.Pi)
}

func vdmToy(t *testing.T, gmin, gmax float64) *vdm {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = "vdm"
	obj, err := NewVDM(cfg, forward.Gaussian{Dim: 1, GammaMin: gmin, GammaMax: gmax}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*vdm)
}

// TestVDMTermsAnalytic: on the two-point toy with the exact x̂0, each term
// of the bound matches its value by quadrature: the prior's closed form,
// and the diffusion and reconstruction integrals (Monte Carlo over 20,000
// tokens at stratified times, within 4 standard errors).
func TestVDMTermsAnalytic(t *testing.T) {
	torchx.Lock()
	const gmin, gmax, p, n = -2.0, 3.0, 0.7, 20000
	d := vdmToy(t, gmin, gmax)
	g := d.g
	net := toydist.TwoPoints{P: p, Shrink: 1}
	u := make([]float64, n)
	for i := range u {
		u[i] = (float64(i) + 0.5) / n
	}
	for _, tok := range []int64{0, 1} {
		e := float64(2*tok - 1)
		torchx.Seed(int64(7 + tok))
		x0 := ts.MustFull([]int64{n, 1}, ts.IntScalar(tok), gotch.Int64, gotch.CPU)
		parts := d.parts(net, x0, u, false)
		x0.MustDrop()
		// Prior: ½(σ₁² + α₁²e² − 1 − log σ₁²), the same for every token.
		wantPrior := 0.5 * (g.Sigma2(1) + g.Alpha2(1)*e*e - 1 - math.Log(g.Sigma2(1)))
		if got, _ := meanSE(parts.prior.Float64Values()); math.Abs(got-wantPrior) > 1e-7 { // float32 embeddings
			t.Errorf("token %d: prior %.12g, want %.12g", tok, got, wantPrior)
		}
		// Diffusion: ½∫γ'e^{−γ}·E_ε[(e − x̂(α e + σ ε))²] dt by the midpoint rule in t.
		const nt = 400
		wantDiff := 0.0
		for i := range nt {
			tt := (float64(i) + 0.5) / nt
			a, s := math.Sqrt(g.Alpha2(tt)), math.Sqrt(g.Sigma2(tt))
			mse := gaussExpect(func(eps float64) float64 {
				z := a*e + s*eps
				xh := math.Tanh(a*z/(s*s) + 0.5*math.Log(p/(1-p)))
				return (e - xh) * (e - xh)
			})
			wantDiff += 0.5 * g.DGamma(tt) * math.Exp(-g.Gamma(tt)) * mse / nt
		}
		if got, se := meanSE(parts.diffusion.Float64Values()); math.Abs(got-wantDiff) > 4*se+1e-4 {
			t.Errorf("token %d: diffusion term %.5f ± %.5f, quadrature %.5f", tok, got, se, wantDiff)
		}
		// Reconstruction: E_ε[−log p(x | z_0)], p(x = 1 | z) = sigmoid(2α₀z/σ₀²).
		a0, s0 := math.Sqrt(g.Alpha2(0)), g.Sigma2(0)
		wantRecon := gaussExpect(func(eps float64) float64 {
			z := a0*e + math.Sqrt(s0)*eps
			return math.Log1p(math.Exp(-e * 2 * a0 * z / s0))
		})
		if got, se := meanSE(parts.recon.Float64Values()); math.Abs(got-wantRecon) > 4*se+1e-4 {
			t.Errorf("token %d: reconstruction %.5f ± %.5f, quadrature %.5f", tok, got, se, wantRecon)
		}
		parts.drop()
	}
}

// TestVDMBoundAboveEntropy: over the toy's data the bound of the exact
// x̂0 lies above the entropy H(p) (the NLL of the data distribution, which
// the exact denoiser's model is) and within 0.01 nats of it at VDM's
// log-SNR range; a denoiser shrunk towards 0 has a clearly larger bound.
func TestVDMBoundAboveEntropy(t *testing.T) {
	torchx.Lock()
	const p, n = 0.7, 20000
	d := vdmToy(t, -13.3, 5)
	entropy := -(p*math.Log(p) + (1-p)*math.Log(1-p))
	bound := func(shrink float64) (float64, float64) {
		torchx.Seed(3)
		x0 := ts.MustRand([]int64{n, 1}, gotch.Double, gotch.CPU).MustLt(ts.FloatScalar(p), true).MustTotype(gotch.Int64, true)
		defer x0.MustDrop()
		u := make([]float64, n)
		for i := range u {
			u[i] = (float64(i) + 0.5) / n
		}
		nelbo, err := d.NELBO(toydist.TwoPoints{P: p, Shrink: shrink}, x0, nil, u)
		if err != nil {
			t.Fatal(err)
		}
		return meanSE(nelbo)
	}
	exact, se := bound(1)
	if exact < entropy-4*se || exact > entropy+0.01+4*se {
		t.Errorf("exact denoiser: bound %.5f ± %.5f nats, want within [H, H + 0.01], H = %.5f", exact, se, entropy)
	}
	shrunk, se2 := bound(0.8)
	if shrunk < exact+0.05 {
		t.Errorf("shrunk denoiser: bound %.5f ± %.5f, not clearly above the exact one's %.5f", shrunk, se2, exact)
	}
	t.Logf("H = %.5f nats; bound with the exact x̂0 %.5f ± %.5f, with x̂0 shrunk by 0.8 %.5f ± %.5f", entropy, exact, se, shrunk, se2)
}
