package train

import (
	"log/slog"
	"testing"
	"time"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// soakConfig trains the ~1M-parameter model with everything on:
// accumulation, clipping, EMA, checkpoints.
func soakConfig(steps int) Config {
	c := testConfig()
	c.Steps, c.BatchSize, c.MicroBatch, c.LR, c.Warmup = steps, 8, 4, 1e-3, 20
	c.CkptEvery, c.KeepLast, c.LogEvery, c.EMA, c.Threads = 500, 2, 100, 0.99, 0
	return c
}

// newMillionModel is tinyLM at 918,016 parameters (vocabulary 1024, width
// 256, hidden 512).
func newMillionModel() (*nn.VarStore, *tinyLM) {
	vs := nn.NewVarStore(gotch.CPU)
	return vs, newTinyLM(vs, 1024, 256, 512, true)
}

// BenchmarkTrainStep times one optimizer step of the ~1M-parameter model on
// an 8×32 batch in two micro-batches (forward, backward, clipping, AdamW,
// EMA).
func BenchmarkTrainStep(b *testing.B) {
	torchx.Lock()
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.DiscardHandler)) // keep the benchmark's output line whole
	vs, m := newMillionModel()
	tr, err := New(soakConfig(1<<30), vs, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	batches := &seqBatcher{vocab: 1024, b: 8, l: 32}
	win := newWindow(time.Now())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := tr.optimizerStep(batches, m.loss, win); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAdamWStep(b *testing.B) {
	torchx.Lock()
	vs := nn.NewVarStore(gotch.CPU)
	var params []*ts.Tensor
	for _, shape := range [][]int64{{1024, 256}, {256, 1024}, {1024}, {1024, 1024}} {
		params = append(params, vs.Root().MustNewVar("p", shape, nn.NewRandnInit(0, 0.02)))
	}
	for _, p := range params {
		s := p.MustSum(gotch.Float, false)
		s.MustBackward()
		s.MustDrop()
	}
	opt := newAdamW(params, 0.9, 0.999, 1e-8, 0.01)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		opt.step(1e-3)
	}
}
