package sampling

import (
	"math"
	"slices"
	"testing"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/internal/toydist"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

func twoPointsNet(t *testing.T, p float64) Net {
	t.Helper()
	cfg := losses.DefaultConfig()
	cfg.Name = "vdm"
	obj, err := losses.NewVDM(cfg, forward.Gaussian{Dim: 1, GammaMin: -13.3, GammaMax: 5}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return Net{Model: toydist.TwoPoints{P: p, Shrink: 1}, Objective: obj}
}

// TestDDPMDrawsTheToy: with the exact x̂0 the sampler's tokens follow the
// data distribution: 4,000 draws of p(x = 1) = 0.7 within 4 binomial
// standard deviations (a χ² test of one degree of freedom at χ² < 16),
// with one network call per step; a template's given token stays.
func TestDDPMDrawsTheToy(t *testing.T) {
	torchx.Lock()
	const p, n = 0.7, 4000
	net := twoPointsNet(t, p)
	cfg := DefaultConfig()
	cfg.BatchSize = n
	res := generate(t, "ddpm", cfg, nil, net, Request{N: n, Len: 1, Steps: 200, Temperature: 1, TopP: 1, Seed: 1})
	ones := 0
	for _, row := range res.Tokens {
		ones += row[0]
	}
	if chi2 := math.Pow(float64(ones)-n*p, 2) / (n * p * (1 - p)); chi2 > 16 {
		t.Errorf("%d of %d draws are token 1, expected %.0f (χ² = %.1f)", ones, n, n*p, chi2)
	}
	if res.ModelCalls != 200 {
		t.Errorf("%d model calls for 200 steps", res.ModelCalls)
	}
	tmpl := Template{Tokens: []int{0, 0, 1}, Given: []bool{true, false, false}}
	cfg.BatchSize, cfg.Clamp = 4, true
	res = generate(t, "ddpm", cfg, nil, net, Request{N: 4, Steps: 50, Template: tmpl, Temperature: 1, TopP: 1, Seed: 2, Recorder: &Recorder{}})
	for _, row := range res.Tokens {
		if row[0] != 0 || slices.ContainsFunc(row, func(v int) bool { return v < 0 || v > 1 }) {
			t.Errorf("clamped, prompted sample %v: want token 0 first and only tokens 0, 1", row)
		}
	}
	if f := res.Filmstrip; f == nil || len(f.Frames) < 2 {
		t.Errorf("no filmstrip of the sharpening: %+v", f)
	}
}
