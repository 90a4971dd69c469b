package models

import (
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestMain silences New's parameter-count logs, which would interleave
// with test and benchmark output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// testConfig is the tiny preset without dropout and with a short rotary
// table.
func testConfig() Config {
	c := DefaultConfig()
	c.Dropout = 0
	c.MaxLen = 64
	return c
}

// newTestModel builds a model on the CPU from a seeded torch generator.
func newTestModel(t testing.TB, cfg Config, spec Spec, seed int64) (*Transformer, *nn.VarStore) {
	t.Helper()
	return newTestModelOn(t, cfg, spec, seed, gotch.CPU)
}

// newTestModelOn is newTestModel on device dev.
func newTestModelOn(t testing.TB, cfg Config, spec Spec, seed int64, dev gotch.Device) (*Transformer, *nn.VarStore) {
	t.Helper()
	torchx.Seed(seed)
	vs := nn.NewVarStore(dev)
	m, err := New(vs.Root(), cfg, spec)
	if err != nil {
		t.Fatal(err)
	}
	return m, vs
}

// tokenTensor turns rows of token ids into an int64 tensor [B, L].
func tokenTensor(rows [][]int64) *ts.Tensor {
	var flat []int64
	for _, r := range rows {
		flat = append(flat, r...)
	}
	return ts.MustOfSlice(flat).MustView([]int64{int64(len(rows)), int64(len(rows[0]))}, true)
}

// randomRows draws b rows of l token ids below v.
func randomRows(b, l, v int, seed uint64) [][]int64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	rows := make([][]int64, b)
	for i := range rows {
		rows[i] = make([]int64, l)
		for j := range rows[i] {
			rows[i][j] = rng.Int64N(int64(v))
		}
	}
	return rows
}

// sigmaTensor makes a float32 tensor [B] of noise levels.
func sigmaTensor(v ...float32) *ts.Tensor { return ts.MustOfSlice(v) }

// forwardValues runs Forward without gradients and returns the logits
// flattened, in [B, L, V] order.
func forwardValues(m *Transformer, x, sigma *ts.Tensor) []float64 {
	var out []float64
	torchx.NoGrad(func() {
		logits := m.Forward(x, sigma, false)
		out = logits.Float64Values()
		logits.MustDrop()
	})
	return out
}

// maxAbsDiff is the largest |a_i − b_i| over the index range [from, to).
func maxAbsDiff(a, b []float64, from, to int) float64 {
	d := 0.0
	for i := from; i < to; i++ {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// crossEntropy is the mean cross-entropy of logits [B, L, V] against
// targets [B, L].
func crossEntropy(logits, targets *ts.Tensor) *ts.Tensor {
	v := logits.MustSize()[2]
	flat := logits.MustReshape([]int64{-1, v}, false)
	defer flat.MustDrop()
	tf := targets.MustReshape([]int64{-1}, false)
	defer tf.MustDrop()
	return flat.MustCrossEntropyLoss(tf, ts.None, 1, -100, 0, false)
}

// perturb adds std·N(0, 1) noise to a parameter, without recording
// gradients. It copies the sum in (Copy_ keeps the tensor's C++ handle)
// instead of calling gotch's MustAdd_, which swaps in a new handle and
// leaks the old one.
func perturb(p *ts.Tensor, std float64) {
	torchx.NoGrad(func() {
		noise := ts.MustRandn(p.MustSize(), gotch.Float, p.MustDevice()).MustMulScalar(ts.FloatScalar(std), true)
		sum := p.MustAdd(noise, false)
		p.Copy_(sum)
		sum.MustDrop()
		noise.MustDrop()
	})
}

// trainingStep is zero_grad, a training forward pass over x (with sigma
// for a time-conditioned network), the mean cross-entropy against x and
// backward: the model's share of a training step, for the benchmarks and
// the memory tests.
func trainingStep(opt *nn.Optimizer, m *Transformer, x, sigma *ts.Tensor) {
	opt.MustZeroGrad()
	logits := m.Forward(x, sigma, true)
	loss := crossEntropy(logits, x)
	loss.MustBackward()
	if err := m.FinishBackward(); err != nil {
		panic(err)
	}
	loss.MustDrop()
	logits.MustDrop()
}
