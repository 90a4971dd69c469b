package sampling

import (
	"math"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

func TestReshape(t *testing.T) {
	torchx.Lock()
	r2 := [3]float64{math.Sqrt(0.5), math.Sqrt(0.3), math.Sqrt(0.2)}
	cases := []struct {
		name       string
		temp, topP float64
		in, want   [2][3]float64
	}{
		{"untouched", 1, 1, [2][3]float64{{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}}, [2][3]float64{{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}}},
		{"greedy", 0, 1, [2][3]float64{{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}}, [2][3]float64{{1, 0, 0}, {0, 1, 0}}},
		{"cold", 0.5, 1, [2][3]float64{{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}}, [2][3]float64{{0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38}, {0.04 / 0.38, 0.25 / 0.38, 0.09 / 0.38}}},
		{"nucleus", 1, 0.6, [2][3]float64{{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}}, [2][3]float64{{0.625, 0.375, 0}, {0, 0.625, 0.375}}},
		{"nucleus at the edge", 1, 0.5, [2][3]float64{{0.5, 0.3, 0.2}, {0.2, 0.5, 0.3}}, [2][3]float64{{1, 0, 0}, {0, 1, 0}}},
		{"warm nucleus", 2, 0.7, [2][3]float64{{0.5, 0.3, 0.2}, {0.5, 0.3, 0.2}},
			[2][3]float64{{r2[0] / (r2[0] + r2[1]), r2[1] / (r2[0] + r2[1]), 0}, {r2[0] / (r2[0] + r2[1]), r2[1] / (r2[0] + r2[1]), 0}}},
	}
	for _, c := range cases {
		in := ts.MustOfSlice([]float64{c.in[0][0], c.in[0][1], c.in[0][2], c.in[1][0], c.in[1][1], c.in[1][2]}).MustView([]int64{2, 3}, true)
		got := reshape(in, c.temp, c.topP, TopPHoltzman).Float64Values(true)
		for i, g := range got {
			if w := c.want[i/3][i%3]; math.Abs(g-w) > 1e-12 {
				t.Errorf("%s: entry %d = %.15f, want %.15f", c.name, i, g, w)
			}
		}
	}
}

// TestTopPRules: on p = (0.5, 0.3, 0.15, 0.05) the two rules differ where
// a token crosses p. top-p 0.7: Holtzman keeps 0.5 (mass before 0 < 0.7)
// and 0.3 (before 0.5 < 0.7); the diffusion rule keeps 0.5 (cumsum 0.5 ≤
// 0.7) and drops 0.3 (cumsum 0.8 > 0.7). top-p 0.4: both keep only the
// first (the diffusion rule's cumsum 0.5 > 0.4, but the first always
// stays). top-p 0.8: cumsum 0.8 ≤ 0.8 keeps two under both.
func TestTopPRules(t *testing.T) {
	torchx.Lock()
	cases := []struct {
		rule string
		topP float64
		want []float64
	}{
		{TopPHoltzman, 0.7, []float64{0.625, 0.375, 0, 0}},
		{TopPDiffusion, 0.7, []float64{1, 0, 0, 0}},
		{"", 0.7, []float64{1, 0, 0, 0}},
		{TopPHoltzman, 0.4, []float64{1, 0, 0, 0}},
		{TopPDiffusion, 0.4, []float64{1, 0, 0, 0}},
		{TopPHoltzman, 0.8, []float64{0.625, 0.375, 0, 0}},
		{TopPDiffusion, 0.8, []float64{0.625, 0.375, 0, 0}},
		{TopPDiffusion, 0.96, []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
		{TopPHoltzman, 0.96, []float64{0.5, 0.3, 0.15, 0.05}},
	}
	for _, c := range cases {
		// The same distribution in another order: the cut follows the sort.
		in := ts.MustOfSlice([]float64{0.15, 0.5, 0.05, 0.3}).MustView([]int64{1, 4}, true)
		got := reshape(in, 1, c.topP, c.rule).Float64Values(true)
		want := []float64{c.want[2], c.want[0], c.want[3], c.want[1]}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("rule %q top-p %v: %v, want %v", c.rule, c.topP, got, want)
				break
			}
		}
	}
}

// TestCategoricalFrequencies draws 100k times from a distribution with a
// zero entry and a rare one.
func TestCategoricalFrequencies(t *testing.T) {
	torchx.Lock()
	torchx.Seed(3)
	p := []float64{0.6, 0, 0.3, 0.099, 0.001}
	const n = 100000
	probs := ts.MustOfSlice(p).MustView([]int64{1, 5}, true).MustExpand([]int64{n, 5}, false, true)
	draws := categorical(probs).Int64Values(true)
	obs := make([]float64, len(p))
	for _, d := range draws {
		obs[d]++
	}
	if obs[1] != 0 {
		t.Errorf("index of probability 0 drawn %v times", obs[1])
	}
	if pv := pValue(chiSquare(obs, p)); pv < minPValue {
		t.Errorf("draws %v fail chi-square against %v: p = %.2g", obs, p, pv)
	}
	probs.MustDrop()
}
