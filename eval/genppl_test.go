package eval

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/torchx"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// meanStderr is the mean of xs and its standard error s/√n.
func meanStderr(xs ...float64) (float64, float64) {
	m, ss := 0.0, 0.0
	for _, x := range xs {
		m += x / float64(len(xs))
	}
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(xs)-1) / float64(len(xs)))
}

// Under fixed next-token probabilities p the generative perplexity of
// hand-made samples has a closed form, as do their unigram entropies and
// distinct-n.
func TestScoreSamplesClosedForm(t *testing.T) {
	torchx.Lock()
	p := []float64{0.5, 0.3, 0.2}
	ref := &Reference{Net: fixedNet(p), Vocab: 3, EOS: -1}
	res := sampling.Result{Tokens: [][]int{{0, 0, 1, 2}, {2, 2, 2, 2}, {1, 0, 1, 0}}, ModelCalls: 40, Elapsed: 2 * time.Second}
	g, err := ScoreSamples(ref, res, 2)
	if err != nil {
		t.Fatal(err)
	}
	l2, l3, l5 := math.Log(0.2), math.Log(0.3), math.Log(0.5)
	perTok := []float64{-(2*l5 + l3 + l2) / 4, -4 * l2 / 4, -(2*l3 + 2*l5) / 4}
	nll, nllSE := meanStderr(perTok...)
	ent := []float64{-(0.5*math.Log(0.5) + 0.5*math.Log(0.25)), 0, math.Log(2)}
	entropy, entSE := meanStderr(ent...)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"nll", g.NLL, nll},
		{"nll stderr", g.NLLStderr, nllSE},
		{"gen ppl", g.GenPPL, math.Exp(nll)},
		{"gen ppl stderr", g.GenPPLStderr, math.Exp(nll) * nllSE},
		{"entropy", g.Entropy, entropy},
		{"entropy stderr", g.EntropyStderr, entSE},
		{"distinct-1", g.Distinct[0], (3.0/4 + 1.0/4 + 2.0/4) / 3},
		{"distinct-2", g.Distinct[1], (1 + 1.0/3 + 2.0/3) / 3},
		{"distinct-3", g.Distinct[2], (1 + 1.0/2 + 1) / 3},
		{"distinct-4", g.Distinct[3], 1},
		{"tokens/s", g.TokensPerS, 6},
		{"model calls", float64(g.ModelCalls), 40},
		{"tokens", float64(g.Tokens), 12},
		{"sample 1 gen ppl", g.PerSample[1].GenPPL, 5},
		{"sample 2 entropy", g.PerSample[2].Entropy, math.Log(2)},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s = %.12g, want %.12g", c.name, c.got, c.want)
		}
	}
	rows := g.Evaluations("ancestral", 16)
	if len(rows) != 9 || rows[0].Metric != results.MetricGenPPL || rows[1].Metric != results.MetricGenPPLSEDD || rows[0].Params[results.ParamSteps] != 16 {
		t.Errorf("evaluation rows %+v", rows)
	}
}

// TestGenPPLProtocols: with EOS = 2 the MDLM protocol counts every non-EOS
// token and each sample's first EOS, per token over all samples; SEDD's is
// the mean over samples of exp(mean NLL over all positions).
//
//	sample 0: 0 0 1 2   counted: all four      −(2l5 + l3 + l2)
//	sample 1: 2 2 2 2   counted: the first     −l2
//	sample 2: 1 2 2 0   counted: 1, 2, 0       −(l3 + l2 + l5)
func TestGenPPLProtocols(t *testing.T) {
	torchx.Lock()
	p := []float64{0.5, 0.3, 0.2}
	ref := &Reference{Net: fixedNet(p), Vocab: 3, EOS: 2}
	res := sampling.Result{Tokens: [][]int{{0, 0, 1, 2}, {2, 2, 2, 2}, {1, 2, 2, 0}}}
	g, err := ScoreSamples(ref, res, 3)
	if err != nil {
		t.Fatal(err)
	}
	l2, l3, l5 := math.Log(0.2), math.Log(0.3), math.Log(0.5)
	nats := []float64{-(2*l5 + l3 + l2), -l2, -(l3 + l2 + l5)}
	mdlm := (nats[0] + nats[1] + nats[2]) / 8
	all := []float64{-(2*l5 + l3 + l2) / 4, -4 * l2 / 4, -(l3 + 2*l2 + l5) / 4}
	sedd := (math.Exp(all[0]) + math.Exp(all[1]) + math.Exp(all[2])) / 3
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"mdlm nll", g.NLL, mdlm},
		{"mdlm gen ppl", g.GenPPL, math.Exp(mdlm)},
		{"sedd gen ppl", g.GenPPLSEDD, sedd},
		{"sample 1 nll", g.PerSample[1].NLL, -l2},
		{"sample 2 nll", g.PerSample[2].NLL, nats[2] / 3},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %.12g, want %.12g", c.name, c.got, c.want)
		}
	}
	if w := mdlmWeights([]int{2, 1, 2, 2}, 2); !slices.Equal(w, []float32{1, 1, 0, 0}) {
		t.Errorf("weights %v", w)
	}
}

// Samples of different lengths are scored in groups of equal length; the
// NLL is the ratio of total nats to total tokens.
func TestScoreSamplesMixedLengths(t *testing.T) {
	torchx.Lock()
	p := []float64{0.5, 0.3, 0.2}
	ref := &Reference{Net: fixedNet(p), Vocab: 3, EOS: -1, MaxLen: 4}
	res := sampling.Result{Tokens: [][]int{{0, 1, 2, 2}, {1, 1}, {2, 0, 0, 0}}}
	g, err := ScoreSamples(ref, res, 8)
	if err != nil {
		t.Fatal(err)
	}
	nats := -(math.Log(0.5)*4 + math.Log(0.3)*3 + math.Log(0.2)*3)
	if !near(g.NLL, nats/10) || !near(g.PerSample[1].NLL, -math.Log(0.3)) || g.TokensPerS != 0 {
		t.Errorf("nll %.9f (want %.9f), sample 1 %.9f, tokens/s %v", g.NLL, nats/10, g.PerSample[1].NLL, g.TokensPerS)
	}
	for _, bad := range []struct {
		tokens [][]int
		err    string
	}{
		{[][]int{{0, 3}}, "outside the reference's 3 tokens"},
		{[][]int{{0, 1, 2, 0, 1}}, "the reference takes at most 4"},
		{nil, "no samples"},
	} {
		if _, err := ScoreSamples(ref, sampling.Result{Tokens: bad.tokens}, 8); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("samples %v: error %v, want %q", bad.tokens, err, bad.err)
		}
	}
}

// Without a reference the reference-free scores remain and no generative
// perplexity row is written.
func TestScoreSamplesWithoutReference(t *testing.T) {
	g, err := ScoreSamples(nil, sampling.Result{Tokens: [][]int{{0, 0}, {0, 1}}}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(g.GenPPL) || !math.IsNaN(g.PerSample[0].GenPPL) || !near(g.Entropy, math.Log(2)/2) {
		t.Errorf("gen ppl %v, entropy %v", g.GenPPL, g.Entropy)
	}
	for _, r := range g.Evaluations("confidence", 8) {
		if r.Metric == results.MetricGenPPL {
			t.Error("a gen_ppl row without a reference")
		}
	}
}

func TestDistinctAndEntropy(t *testing.T) {
	cases := []struct {
		s        []int
		n        int
		distinct float64
	}{
		{[]int{7, 7, 7}, 1, 1.0 / 3},
		{[]int{1, 2, 1, 2, 1}, 2, 2.0 / 4},
		{[]int{1, 2}, 3, 0},
		{[]int{5, 6, 7, 5, 6, 7, 5}, 3, 3.0 / 5},
	}
	for _, c := range cases {
		if got := distinctN(c.s, c.n); !near(got, c.distinct) {
			t.Errorf("distinct-%d of %v = %v, want %v", c.n, c.s, got, c.distinct)
		}
	}
	if h := unigramEntropy([]int{1, 2, 3, 4}); !near(h, math.Log(4)) {
		t.Errorf("entropy of 4 distinct tokens %v, want log 4", h)
	}
}
