package sampling

import (
	"context"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// Why the expected distribution is the chain's own law and not the toy
// table: every sampler here moves the positions of x_t independently,
// each with its exact one-position reverse conditional P(x_s^i | x_t) when
// the network is exact. The product of those conditionals is not the
// joint reverse step, so after T steps the samples follow the table only
// in the limit of many steps (when at most one position moves per step).
// chainLaw computes, by enumeration in plain Go, the exact law of that
// finite-T chain from the toy's joint distribution (without forward's or
// the sampler's code); a chi-square test then checks the samples against
// it. TestChainLawConvergesToData checks that the law tends to the table
// as T grows, and TestOneStepSamplesAreNotTheData that the test has power.

const (
	toySamples = 20000
	toyBatch   = 10000
	minPValue  = 1e-3
	remdmEta   = 0.5 // large, so that remasking changes the law
)

func TestSamplersDrawTheirExactChainLaw(t *testing.T) {
	torchx.Lock()
	cases := []struct {
		name, sampler, proc, form, objective string
		proportional                         bool
		steps                                int
		remask                               string
	}{
		{"mdlm ancestral", "ancestral", "absorbing", "mixture", "mdlm", false, 16, ""},
		{"mdlm cached", "ancestral-cached", "absorbing", "mixture", "mdlm", false, 16, ""},
		{"d3pm uniform mixture", "ancestral", "uniform", "mixture", "d3pm", false, 16, ""},
		{"d3pm uniform proportional", "ancestral", "uniform", "proportional", "d3pm", true, 16, ""},
		{"sedd analytic absorbing", "sedd-analytic", "absorbing", "mixture", "sedd", false, 16, ""},
		{"sedd analytic uniform", "sedd-analytic", "uniform", "mixture", "sedd", false, 16, ""},
		{"sedd euler absorbing", "sedd-euler", "absorbing", "mixture", "sedd", false, 16, ""},
		{"sedd euler uniform", "sedd-euler", "uniform", "mixture", "sedd", false, 16, ""},
		{"remdm cap", "remdm", "absorbing", "mixture", "mdlm", false, 16, "cap"},
		{"remdm rescale", "remdm", "absorbing", "mixture", "mdlm", false, 16, "rescale"},
		{"remdm loop", "remdm", "absorbing", "mixture", "mdlm", false, 20, "loop"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := toyTable(tc.proc)
			proc := toyProcess(d)
			cfg := DefaultConfig()
			cfg.Form, cfg.Eta = tc.form, remdmEta
			if tc.remask != "" {
				cfg.Remask = tc.remask
			}
			net := toyNetFor(t, d, proc, tc.objective, tc.proportional)
			net.Model.(*toyNet).first = proc.Schedule().Sigma(1 / float64(tc.steps))
			rows := toySample(t, tc.sampler, cfg, proc, net, tc.steps, 1)
			move := d.reverse
			sigma := grid(proc.Schedule(), tc.steps)
			switch tc.sampler {
			case "sedd-euler":
				move = d.eulerMove(seddTimesRef(tc.steps, cfg.SEDDEps), proc.Schedule())
			case "remdm":
				move = d.remdmMove(tc.remask, remdmEta)
				if tc.remask == "loop" {
					move = d.remdmLoopMove(cfg.TOn, cfg.TOff, cfg.AlphaOn, remdmEta, tc.steps)
				}
			}
			if strings.HasPrefix(tc.sampler, "sedd") {
				sigma = sigmasAt(proc.Schedule(), seddTimesRef(tc.steps, cfg.SEDDEps))
			}
			want := d.chainLawOn(sigma, move)
			stat, df := chiSquare(counts(rows, d.v), want)
			if p := pValue(stat, df); p < minPValue {
				t.Errorf("chi-square %.1f (df %d) against the chain's exact law: p = %.2g", stat, df, p)
			}
		})
	}
}

// TestChainLawConvergesToData: with many steps the independent moves
// become exact and the chain's law is the toy table (up to α(1) = ε, the
// tokens the log-linear schedule leaves unmasked at t = 1).
func TestChainLawConvergesToData(t *testing.T) {
	for _, proc := range []string{"absorbing", "uniform"} {
		d := toyTable(proc)
		law := d.chainLaw(2048, forward.LogLinear{Eps: 1e-3}, d.reverse)
		if tv := totalVariation(law, d.p); tv > 2e-3 {
			t.Errorf("%s: total variation %.4f between the 2048-step chain law and the data", proc, tv)
		}
	}
}

// TestOneStepSamplesAreNotTheData: one step unmasks both positions
// independently (the product of the marginals): the samples pass against
// that law and fail against the table, so the tests above can fail.
func TestOneStepSamplesAreNotTheData(t *testing.T) {
	torchx.Lock()
	d := toyTable("absorbing")
	proc := toyProcess(d)
	rows := toySample(t, "ancestral", DefaultConfig(), proc, toyNetFor(t, d, proc, "mdlm", false), 1, 2)
	obs := counts(rows, d.v)
	if p := pValue(chiSquare(obs, d.chainLaw(1, proc.Schedule(), d.reverse))); p < minPValue {
		t.Errorf("one-step samples against the one-step law: p = %.2g", p)
	}
	if p := pValue(chiSquare(obs, d.p)); p > 1e-9 {
		t.Errorf("one-step samples pass as draws from the table (p = %.2g): the test has no power", p)
	}
}

// toySample draws toySamples sequences with the named sampler.
func toySample(t *testing.T, name string, cfg Config, proc forward.Process, net Net, steps int, seed int64) [][]int {
	t.Helper()
	cfg.BatchSize = toyBatch
	s, err := New(name, cfg, proc, net)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Generate(context.Background(), Request{N: toySamples, Len: 2, Steps: steps, Temperature: 1, TopP: 1, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return res.Tokens
}

// seddTimesRef is SEDD's time grid written out independently of the
// sampler: T predictor steps from t = 1 down to δ in equal steps, then the
// denoising step from δ to 0; increasing, with 0 first.
func seddTimesRef(steps int, eps float64) []float64 {
	out := []float64{0}
	for i := steps; i >= 0; i-- {
		out = append(out, 1-float64(i)*(1-eps)/float64(steps))
	}
	return out
}

func sigmasAt(sched forward.Schedule, tau []float64) []float64 {
	out := make([]float64, len(tau))
	for k, t := range tau {
		if t > 0 {
			out[k] = sched.Sigma(t)
		}
	}
	return out
}

// eulerMove is the exact law of one Euler step of one position with exact
// scores at the times tau (seddTimesRef), and on the last step (the
// denoising step) the analytic step.
func (d toy) eulerMove(tau []float64, sched forward.Schedule) func(x []int, i, step int, sigmaS, sigmaT float64) []float64 {
	steps := len(tau) - 2 // predictor steps
	return func(x []int, i, step int, sigmaS, sigmaT float64) []float64 {
		if step == 1 {
			return d.reverse(x, i, step, sigmaS, sigmaT)
		}
		h := sched.DSigma(tau[step]) * (tau[steps+1] - tau[1]) / float64(steps)
		out := make([]float64, d.states())
		total := 0.0
		for y := range d.v {
			rate := 1 / float64(d.v) // uniform: every other token at rate 1/V
			if d.proc == "absorbing" {
				rate = 0
				if x[i] == d.v {
					rate = 1
				}
			}
			if y != x[i] {
				out[y] = h * rate * d.score(x, i, y, sigmaT)
				total += out[y]
			}
		}
		out[x[i]] = math.Max(0, 1-total)
		norm := total + out[x[i]]
		for y := range out {
			out[y] /= norm
		}
		return out
	}
}

// remdmMove is the exact law of one ReMDM step of one position with exact
// marginals, for the cap and rescale schedules.
func (d toy) remdmMove(schedule string, eta float64) func(x []int, i, step int, sigmaS, sigmaT float64) []float64 {
	return func(x []int, i, _ int, sigmaS, sigmaT float64) []float64 {
		at, as := math.Exp(-sigmaT), math.Exp(-sigmaS)
		sigmaMax := math.Min(1, (1-as)/at)
		sigma := math.Min(eta, sigmaMax)
		if schedule == "rescale" {
			sigma = eta * sigmaMax
		}
		out := make([]float64, d.states())
		if x[i] != d.v {
			out[x[i]], out[d.v] = 1-sigma, sigma
			return out
		}
		unmask := (as - (1-sigma)*at) / (1 - at)
		for y, p := range d.marginals(x, sigmaT)[i] {
			out[y] = unmask * p
		}
		out[d.v] = 1 - unmask
		return out
	}
}

// remdmLoopMove is the exact law of one ReMDM-loop step of one position
// with exact marginals, written from the paper's three phases: α rises
// linearly from 0 at t = 1 to α_on at t_on, is held at α_on down to t_off
// (where decoded tokens remask with probability η), then rises linearly to
// 1 at t = 0. Step k goes from t = k/T to s = (k−1)/T.
func (d toy) remdmLoopMove(tOn, tOff, alphaOn, eta float64, steps int) func(x []int, i, step int, sigmaS, sigmaT float64) []float64 {
	alphaAt := func(t float64) float64 {
		switch {
		case t > tOn:
			return alphaOn * (1 - t) / (1 - tOn)
		case t <= tOff:
			return alphaOn + (1-alphaOn)*(tOff-t)/tOff
		}
		return alphaOn
	}
	return func(x []int, i, step int, _, _ float64) []float64 {
		t, s := float64(step)/float64(steps), float64(step-1)/float64(steps)
		at, as, sigma := alphaAt(t), alphaAt(s), 0.0
		if t <= tOn && t > tOff {
			as, sigma = at, eta
		}
		out := make([]float64, d.states())
		if x[i] != d.v {
			out[x[i]], out[d.v] = 1-sigma, sigma
			return out
		}
		unmask := (as - (1-sigma)*at) / (1 - at)
		for y, p := range d.marginals(x, 0.5)[i] {
			out[y] = unmask * p
		}
		out[d.v] = 1 - unmask
		return out
	}
}

// chiSquare is Pearson's statistic of counts against probabilities, with
// its degrees of freedom (cells of probability 0 must be empty).
func chiSquare(obs, p []float64) (float64, int) {
	n := 0.0
	for _, o := range obs {
		n += o
	}
	stat, cells := 0.0, 0
	for i, o := range obs {
		if p[i] == 0 {
			if o > 0 {
				return math.Inf(1), 1
			}
			continue
		}
		e := n * p[i]
		stat += (o - e) * (o - e) / e
		cells++
	}
	return stat, cells - 1
}

func pValue(stat float64, df int) float64 {
	return distuv.ChiSquared{K: float64(df)}.Survival(stat)
}

func totalVariation(a, b []float64) float64 {
	tv := 0.0
	for i := range a {
		tv += math.Abs(a[i]-b[i]) / 2
	}
	return tv
}
