package eval

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
)

// TestMain silences progress and model logs, which would interleave with
// test output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// toy is an explicit data distribution over all V^L sequences (adapted
// from the losses tests): the ground truth the bounds are checked against.
type toy struct {
	v, l int
	p    []float64 // by sequence code: base-V digits, position 0 first
}

// toy3x2 has V = 3, L = 2 and strongly correlated positions.
var toy3x2 = toy{v: 3, l: 2, p: []float64{
	0.30, 0.05, 0.05,
	0.02, 0.20, 0.08,
	0.10, 0.05, 0.15,
}}

// seqs enumerates all n^l sequences over n symbols, in code order.
func seqs(n, l int) [][]int64 {
	total := int(math.Pow(float64(n), float64(l)))
	out := make([][]int64, total)
	for c := range out {
		s := make([]int64, l)
		r := c
		for i := l - 1; i >= 0; i-- {
			s[i] = int64(r % n)
			r /= n
		}
		out[c] = s
	}
	return out
}

// dataset is n sequences of the toy in proportions as close to p as n
// allows (sequence i sits at the (i+½)/n quantile), in a fixed shuffled
// order, and their true NLL in nats per token.
func (d toy) dataset(n int) ([][]int64, float64) {
	all := seqs(d.v, d.l)
	out := make([][]int64, n)
	nll := 0.0
	for i := range out {
		q, c := (float64(i)+0.5)/float64(n), 0
		for cum := d.p[0]; cum < q; cum += d.p[c] {
			c++
		}
		out[(i*7919)%n] = all[c] // 7919 is prime to the sizes used: a permutation
		nll -= math.Log(d.p[c])
	}
	return out, nll / float64(n*d.l)
}

// exact computes the true posterior of a toy under a process, from the
// process's per-position transition matrix exp(σR).
type exact struct {
	d     toy
	proc  forward.Process
	cache map[float64][][]float64
}

func newExact(d toy, proc forward.Process) *exact {
	return &exact{d: d, proc: proc, cache: map[float64][][]float64{}}
}

// trans is exp(σR) as an N×N Go matrix.
func (e *exact) trans(sigma float64) [][]float64 {
	if m, ok := e.cache[sigma]; ok {
		return m
	}
	n := e.proc.NumStates()
	x := ts.MustArange(ts.IntScalar(int64(n)), gotch.Int64, gotch.CPU).MustView([]int64{1, int64(n)}, true)
	defer x.MustDrop()
	vals := e.proc.Row(x, []float64{sigma}, gotch.Double).Float64Values(true)
	m := make([][]float64, n)
	for i := range m {
		m[i] = vals[i*n : (i+1)*n]
	}
	e.cache[sigma] = m
	return m
}

// x0Marginals is p(x0^i = v | x_t) for every position: [L][V].
func (e *exact) x0Marginals(xt []int64, sigma float64) [][]float64 {
	m := e.trans(sigma)
	out := make([][]float64, e.d.l)
	for i := range out {
		out[i] = make([]float64, e.d.v)
	}
	total := 0.0
	for c, x0 := range seqs(e.d.v, e.d.l) {
		w := e.d.p[c]
		for i := range x0 {
			w *= m[x0[i]][xt[i]]
		}
		total += w
		for i := range x0 {
			out[i][x0[i]] += w
		}
	}
	for i := range out {
		for v := range out[i] {
			out[i][v] /= total
		}
	}
	return out
}

// tableNet is a network given by a Go function of one sequence and its
// noise level, returning [L][out] logits.
type tableNet struct {
	out int
	fn  func(x []int64, sigma float64) [][]float64
}

func (n *tableNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	size := x.MustSize()
	b, l := int(size[0]), int(size[1])
	xs := x.Int64Values()
	var sg []float64
	if sigma != nil {
		sg = sigma.Float64Values()
	}
	vals := make([]float64, 0, b*l*n.out)
	for r := range b {
		s := 0.0
		if sg != nil {
			s = sg[r]
		}
		for _, row := range n.fn(xs[r*l:(r+1)*l], s) {
			vals = append(vals, row...)
		}
	}
	return ts.MustOfSlice(vals).MustView([]int64{int64(b), int64(l), int64(n.out)}, true)
}

// wobble is a fixed, irregular perturbation of logits: a model that is
// wrong in a reproducible way.
func wobble(x []int64, i, v int) float64 {
	c := 0.0
	for _, s := range x {
		c = c*7 + float64(s)
	}
	return 0.7 * math.Sin(13*c+5*float64(i)+3*float64(v)+1)
}

// denoiser is the toy's exact clean-token model for an absorbing process
// (whose marginals do not depend on σ > 0), optionally wobbled.
func denoiser(ex *exact, wobbly bool) *tableNet {
	return &tableNet{out: ex.d.v, fn: func(x []int64, _ float64) [][]float64 {
		p := ex.x0Marginals(x, 1)
		out := make([][]float64, len(p))
		for i := range p {
			out[i] = make([]float64, len(p[i]))
			for v, pv := range p[i] {
				out[i][v] = math.Log(max(pv, 1e-300))
				if wobbly {
					out[i][v] += wobble(x, i, v)
				}
			}
		}
		return out
	}}
}

// fixedNet outputs the same logits log p at every position, whatever its
// input: a model whose NLL is known in closed form.
func fixedNet(p []float64) *tableNet {
	logits := make([]float64, len(p))
	for v, pv := range p {
		logits[v] = math.Log(pv)
	}
	return &tableNet{out: len(p), fn: func(x []int64, _ float64) [][]float64 {
		out := make([][]float64, len(x))
		for i := range out {
			out[i] = logits
		}
		return out
	}}
}

// objective builds a losses objective from a config edit.
func objective(t *testing.T, name string, proc forward.Process, v int, edit func(*losses.Config)) losses.Objective {
	t.Helper()
	cfg := losses.DefaultConfig()
	cfg.Name = name
	if edit != nil {
		edit(&cfg)
	}
	obj, err := losses.New(cfg, proc, v)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// rowBatches serves rows of equal length, all scored, as Batches.
func rowBatches(rows [][]int64, batchSize int) *blocks {
	b := &blocks{size: batchSize}
	for _, r := range rows {
		mask := make([]float32, len(r))
		for j := range mask {
			mask[j] = 1
		}
		b.tokens, b.mask = append(b.tokens, r), append(b.mask, mask)
	}
	return b
}

// sharedFile is a file of ../shared/data (or $DATA_DIR); the test is
// skipped when it is missing.
func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("dataset file missing: %v", err)
	}
	return p
}

// trimmedVocab is a GPT-2 vocabulary trimmed to the tokens of texts (all
// of them kept when k = 0, else the k most frequent): a small V for tests.
func trimmedVocab(t *testing.T, k int, texts ...string) *data.Vocab {
	t.Helper()
	gpt2, err := data.GPT2Vocab()
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, gpt2.Size())
	distinct := 0
	for _, s := range texts {
		for _, id := range gpt2.Encode(s) {
			if counts[id] == 0 {
				distinct++
			}
			counts[id]++
		}
	}
	if k == 0 {
		k = distinct
	}
	v, err := data.TrimVocab(counts, k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
