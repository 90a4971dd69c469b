package eval

import (
	"github.com/dlmlab/difflm/internal/toydist"
	"github.com/dlmlab/difflm/results"

	"context"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// toyModel is an mdlm model of toydist.Dist3x2() (absorbing, log-linear ε) with T
// steps (0 = continuous time).
func toyModel(t *testing.T, wobbly bool, steps int, eps float64) Model {
	t.Helper()
	proc := forward.NewAbsorbing(toydist.Dist3x2().V, forward.LogLinear{Eps: eps})
	obj := objective(t, "mdlm", proc, toydist.Dist3x2().V, func(c *losses.Config) { c.Steps = steps })
	return Model{Net: denoiser(toydist.NewExact(toydist.Dist3x2(), proc), wobbly), Objective: obj, Steps: steps, Process: proc, SeqLen: toydist.Dist3x2().L}
}

func bound(t *testing.T, m Model, rows [][]int64, edit func(*Config)) Result {
	t.Helper()
	cfg := DefaultConfig()
	cfg.BatchSize = 256 // few calls: the toy's cost is per call, not per row
	if edit != nil {
		edit(&cfg)
	}
	res, err := Bound(context.Background(), m, cfg, "toy", rowBatches(rows, cfg.BatchSize))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// With the exact denoiser the continuous-time bound is −log p(x0) for
// every x0 (up to the O(ε) prior term), so the estimate must sit on the
// true NLL within its error, whether times are drawn uniformly (MDLM) or
// importance-sampled; a wrong network's bound lies above it.
func TestBoundAgainstTrueNLL(t *testing.T) {
	torchx.Lock()
	rows, nll := toydist.Dist3x2().Dataset(512)
	for _, c := range []struct {
		name               string
		wobbly, importance bool
	}{{"exact", false, true}, {"exact/uniform-t", false, false}, {"wobbled", true, true}} {
		res := bound(t, toyModel(t, c.wobbly, 0, 1e-4), rows, func(cfg *Config) { cfg.TDraws, cfg.TImportance = 32, c.importance })
		t.Logf("%s: bound %.4f ± %.4f nats/token, true NLL %.4f", c.name, res.NLL, res.NLLStderr, nll)
		if res.Tokens != 1024 || res.Sequences != 512 || res.K != 32 || res.Exact {
			t.Errorf("%s: tokens %d sequences %d K %d exact %v", c.name, res.Tokens, res.Sequences, res.K, res.Exact)
		}
		if !(res.NLLStderr > 0) || math.Abs(res.Value-math.Exp(res.NLL)) > 1e-12 || math.Abs(res.Stderr-res.Value*res.NLLStderr) > 1e-12 {
			t.Errorf("%s: inconsistent result %+v", c.name, res)
		}
		gap := (res.NLL - nll) / res.NLLStderr
		switch {
		case !c.wobbly && math.Abs(gap) > 4:
			t.Errorf("%s: bound %.4f is %.1f standard errors from the true NLL %.4f", c.name, res.NLL, gap, nll)
		case c.wobbly && gap < 3:
			t.Errorf("%s: bound %.4f only %.1f standard errors above the true NLL %.4f", c.name, res.NLL, gap, nll)
		}
	}
}

// The standard error of K draws per sequence falls like 1/√K: from K = 4
// to K = 64 by a factor 4 (3.6 to 4.6 over eight seeds, measured).
func TestStderrShrinksLikeRootK(t *testing.T) {
	torchx.Lock()
	rows, _ := toydist.Dist3x2().Dataset(512)
	m := toyModel(t, true, 0, 1e-3)
	se := map[int]float64{}
	for _, k := range []int{4, 64} {
		se[k] = bound(t, m, rows, func(c *Config) { c.TDraws = k }).NLLStderr
	}
	ratio := se[4] / se[64]
	t.Logf("stderr K=4 %.5f, K=64 %.5f, ratio %.3f (ideal 4)", se[4], se[64], ratio)
	if ratio < 3.2 || ratio > 4.8 {
		t.Errorf("stderr ratio K=4/K=64 = %.3f, want ≈ 4", ratio)
	}
}

// Summing all T steps gives the average over u of the step estimate, so it
// agrees with many random draws; its time error is 0, and with several
// sweeps only the x_t noise is left, far below the random-step error.
func TestExactStepsMatchDraws(t *testing.T) {
	torchx.Lock()
	rows, _ := toydist.Dist3x2().Dataset(256)
	m := toyModel(t, true, 8, 1e-3)
	random := bound(t, m, rows, func(c *Config) { c.TDraws = 64 })
	one := bound(t, m, rows, func(c *Config) { c.TDraws, c.ExactSteps = 1, true })
	sweeps := bound(t, m, rows, func(c *Config) { c.TDraws, c.ExactSteps = 8, true })
	random8 := bound(t, m, rows, func(c *Config) { c.TDraws = 8 })
	t.Logf("random K=64 %.4f ± %.4f; exact 1 sweep %.4f ± %v; exact 8 sweeps %.4f ± %.4f; random K=8 ± %.4f",
		random.NLL, random.NLLStderr, one.NLL, one.NLLStderr, sweeps.NLL, sweeps.NLLStderr, random8.NLLStderr)
	if !one.Exact || one.Stderr != 0 || one.NLLStderr != 0 || one.K != 1 {
		t.Errorf("one exact sweep: exact %v stderr %v K %d, want exact with stderr 0", one.Exact, one.NLLStderr, one.K)
	}
	if d := math.Abs(sweeps.NLL - random.NLL); d > 4*math.Hypot(sweeps.NLLStderr, random.NLLStderr) {
		t.Errorf("exact sum %.4f and random draws %.4f differ by %.4f, beyond their errors", sweeps.NLL, random.NLL, d)
	}
	if !(sweeps.NLLStderr < random8.NLLStderr/2) {
		t.Errorf("8 exact sweeps have stderr %.4f, not well below 8 random draws' %.4f", sweeps.NLLStderr, random8.NLLStderr)
	}
	cont := bound(t, toyModel(t, true, 0, 1e-3), rows, func(c *Config) { c.TDraws, c.ExactSteps = 2, true })
	if cont.Exact {
		t.Error("exact_steps made a continuous-time bound exact")
	}
}

// The AR bound is the exact NLL: with fixed next-token probabilities it is
// Σ −log p(token) over the scored tokens; padding and padding rows count
// for nothing.
func TestARExact(t *testing.T) {
	torchx.Lock()
	p := []float64{0.5, 0.3, 0.2}
	m := Model{Net: fixedNet(p), Objective: objective(t, "ar", nil, 3, nil), SeqLen: 3}
	batch := data.Batch{B: 3, L: 3, Rows: 2,
		Tokens: []int64{0, 1, 2, 2, 2, 0, 0, 0, 0},
		Mask:   []float32{1, 1, 1, 1, 1, 0, 0, 0, 0}}
	cfg := DefaultConfig()
	cfg.TDraws = 5 // ignored: ar is exact
	res, err := Bound(context.Background(), m, cfg, "ar", &oneBatch{b: batch})
	if err != nil {
		t.Fatal(err)
	}
	nll := -(math.Log(0.5) + math.Log(0.3) + 3*math.Log(0.2)) / 5
	want := Result{Value: math.Exp(nll), NLL: nll, Tokens: 5, Sequences: 2, K: 1, Exact: true}
	if math.Abs(res.NLL-want.NLL) > 1e-6 || math.Abs(res.Value-want.Value) > 1e-5 {
		t.Errorf("AR bound %.6f (ppl %.5f), want %.6f (ppl %.5f)", res.NLL, res.Value, want.NLL, want.Value)
	}
	if !math.IsNaN(res.UNKShare) {
		t.Errorf("UNK share %g without an UNK id, want NaN", res.UNKShare)
	}
	if len(res.PerSequence.Nats) != 2 || res.PerSequence.Tokens[0] != 3 || res.PerSequence.Tokens[1] != 2 {
		t.Errorf("per-sequence bounds %+v", res.PerSequence)
	}
	if !math.IsNaN(res.BPC) || !math.IsNaN(res.Bytes) {
		t.Errorf("bpc %g over %g bytes without byte lengths, want NaN", res.BPC, res.Bytes)
	}
	res.NLL, res.Value, res.UNKShare, res.BPC, res.BPCStderr, res.Bytes = want.NLL, want.Value, 0, 0, 0, 0
	res.PerSequence = results.SequenceBounds{}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result %+v, want %+v", res, want)
	}
}

// TestBPCUniform27: a model uniform over text8's 27 symbols (EOS given
// almost nothing) scores exactly log2 27 bits per character on text, and
// an EOS, 0 bytes, charges its nats to the characters around it.
func TestBPCUniform27(t *testing.T) {
	torchx.Lock()
	p := make([]float64, 28)
	for i := range 27 {
		p[i] = (1 - 1e-12) / 27
	}
	p[27] = 1e-12
	bl := make([]float64, 29)
	for i := range 27 {
		bl[i] = 1
	}
	m := Model{Net: fixedNet(p), Objective: objective(t, "ar", nil, 28, nil), SeqLen: 4, ByteLens: bl}
	rows := [][]int64{{1, 2, 0, 3}, {26, 0, 5, 9}}
	res, err := Bound(context.Background(), m, DefaultConfig(), "t", rowBatches(rows, 2))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.BPC-math.Log2(27)) > 1e-9 || res.Bytes != 8 || res.BPCStderr != 0 {
		t.Errorf("bpc %.12f over %g bytes (± %g), want log2 27 = %.12f", res.BPC, res.Bytes, res.BPCStderr, math.Log2(27))
	}
	// With an EOS among the tokens: 7 characters carry 7·ln27 + ln(1/p_eos) nats.
	rows[1][3] = 27
	res, err = Bound(context.Background(), m, DefaultConfig(), "t", rowBatches(rows, 2))
	if err != nil {
		t.Fatal(err)
	}
	want := (7*math.Log(27/(1-1e-12)) - math.Log(1e-12)) / 7 / math.Ln2
	if math.Abs(res.BPC-want) > 1e-6 || res.Bytes != 7 {
		t.Errorf("bpc with EOS %.9f over %g bytes, want %.9f over 7", res.BPC, res.Bytes, want)
	}
	u, err := Unigram(context.Background(), []int64{1, 1, 1}, []float64{1, 1, 0}, DefaultConfig(), rowBatches([][]int64{{0, 1, 2}}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(u.BPC-3*math.Log2(3)/2) > 1e-12 {
		t.Errorf("unigram bpc %g, want 3·log2 3 / 2 (three uniform tokens, two bytes)", u.BPC)
	}
}

// oneBatch serves a single batch.
type oneBatch struct {
	b    data.Batch
	done bool
}

func (o *oneBatch) Next() (data.Batch, error) {
	if o.done {
		return data.Batch{}, io.EOF
	}
	o.done = true
	return o.b, nil
}

// Every draw puts one row in each stratum [i/n, (i+1)/n), and a row is
// dealt every stratum in turn, never one for good.
func TestStratifiedDraws(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 5
	row0 := map[int]bool{}
	for range 200 {
		strata := map[int]bool{}
		for _, u := range stratified(rng, n) {
			if u < 0 || u >= 1 {
				t.Fatalf("draw %v outside [0, 1)", u)
			}
			strata[int(u*n)] = true
		}
		if len(strata) != n {
			t.Fatalf("one draw covers strata %v, want all %d", strata, n)
		}
		row0[int(stratified(rng, n)[0]*n)] = true
	}
	if len(row0) != n {
		t.Errorf("row 0 only ever drew from strata %v", row0)
	}
}

// An untrained transformer (outputs near uniform) has a bound of ≈ ln V
// nats per token (within its Monte Carlo error), diffusion and AR alike:
// the real network's float32 path.
func TestBoundOfUntrainedTransformer(t *testing.T) {
	torchx.Lock()
	const v, l = 50, 16
	ll := forward.LogLinear{Eps: 1e-3}
	absorbing := forward.NewAbsorbing(v, ll)
	rows := make([][]int64, 32)
	for i := range rows {
		rows[i] = make([]int64, l)
		for j := range rows[i] {
			rows[i][j] = int64((i*31 + j*7) % v)
		}
	}
	for _, c := range []struct {
		name string
		obj  losses.Objective
		proc forward.Process
	}{
		{"mdlm", objective(t, "mdlm", absorbing, v, nil), absorbing},
		{"ar", objective(t, "ar", nil, v, nil), nil},
	} {
		spec := c.obj.Spec()
		torchx.Seed(3)
		net, _ := tinyTransformer(t, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal})
		m := Model{Net: net, Objective: c.obj, Process: c.proc, SeqLen: l}
		res := bound(t, m, rows, func(cfg *Config) { cfg.BatchSize, cfg.TDraws = 8, 16 })
		t.Logf("%s: %.4f ± %.4f nats/token, ln V = %.4f", c.name, res.NLL, res.NLLStderr, math.Log(v))
		if math.Abs(res.NLL-math.Log(v)) > 4*res.NLLStderr+0.02 || res.Tokens != 32*l {
			t.Errorf("%s: untrained bound %.4f over %d tokens, want ≈ ln %d = %.4f over %d", c.name, res.NLL, res.Tokens, v, math.Log(v), 32*l)
		}
	}
}

// The UNK share counts exactly the scored tokens equal to Model.UNK, and a
// model without an UNK reports none (no row in the results).
func TestBoundUNKShare(t *testing.T) {
	torchx.Lock()
	rows, _ := toydist.Dist3x2().Dataset(64)
	var twos, all int
	for _, r := range rows {
		for _, x := range r {
			all++
			if x == 2 {
				twos++
			}
		}
	}
	m := toyModel(t, false, 0, 1e-3)
	m.UNK = 2 // token 2 plays the UNK
	res := bound(t, m, rows, func(c *Config) { c.TDraws = 2 })
	if want := float64(twos) / float64(all); res.UNKShare != want || want == 0 {
		t.Errorf("UNK share %g, want %d/%d", res.UNKShare, twos, all)
	}
	if evs := res.Evaluations("toy"); len(evs) != 3 || evs[2].Metric != results.MetricUNKShare || evs[2].Value != res.UNKShare {
		t.Errorf("evaluations %+v, want ppl_bound, nll, unk_share", evs)
	}
	m.UNK = 0
	res = bound(t, m, rows, func(c *Config) { c.TDraws = 2 })
	if !math.IsNaN(res.UNKShare) || len(res.Evaluations("toy")) != 2 {
		t.Errorf("without an UNK: share %g, %d evaluations", res.UNKShare, len(res.Evaluations("toy")))
	}
}

// The unigram baseline is Σ −log((c+½)/(N+V/2)) over exactly the scored
// tokens, averaged: counts 3, 1, 0 (N = 4, V = 3) on the tokens 0 0 1 2.
func TestUnigram(t *testing.T) {
	res, err := Unigram(context.Background(), []int64{3, 1, 0}, nil, DefaultConfig(), rowBatches([][]int64{{0, 0}, {1, 2}}, 2))
	if err != nil {
		t.Fatal(err)
	}
	p := func(c float64) float64 { return (c + 0.5) / 5.5 }
	want := -(2*math.Log(p(3)) + math.Log(p(1)) + math.Log(p(0))) / 4
	if res.Tokens != 4 || math.Abs(res.NLL-want) > 1e-12 || math.Abs(res.Value-math.Exp(want)) > 1e-9 {
		t.Errorf("unigram %+v, want NLL %g over 4 tokens", res, want)
	}
	if _, err := Unigram(context.Background(), []int64{3, 1}, nil, DefaultConfig(), rowBatches([][]int64{{0, 2}}, 1)); err == nil {
		t.Error("a token outside the counts: no error")
	}
}
