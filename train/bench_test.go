package train

import (
	"fmt"
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

// BenchmarkAdamWStep is one AdamW step and EMA update over small-cpu's
// parameter list (4 layers of attention, MLP and norms: 53 tensors, 3.2M
// elements): flat and fused into one pass (the CPU path), flat as tensor ops
// (the CUDA path: eight ops and the EMA's lerp) and per tensor (those ops
// per tensor, as before the flat buffer). The ratios of the ns/op lines
// are what each layout saves per optimizer step.
func BenchmarkAdamWStep(b *testing.B) {
	torchx.Lock()
	var shapes [][]int64
	shapes = append(shapes, []int64{29, 256})
	for range 4 {
		shapes = append(shapes, []int64{256}, []int64{256}, []int64{768, 256}, []int64{768},
			[]int64{256, 256}, []int64{256}, []int64{256}, []int64{256},
			[]int64{1024, 256}, []int64{1024}, []int64{256, 1024}, []int64{256})
	}
	shapes = append(shapes, []int64{256}, []int64{256}, []int64{28, 256}, []int64{28})
	newParams := func() []*ts.Tensor {
		vs := nn.NewVarStore(gotch.CPU)
		var params []*ts.Tensor
		for i, shape := range shapes {
			params = append(params, vs.Root().MustNewVar(fmt.Sprintf("p%d", i), shape, nn.NewRandnInit(0, 0.02)))
		}
		return params
	}
	for _, fused := range []bool{true, false} {
		name := map[bool]string{true: "flat-fused", false: "flat-ops"}[fused]
		b.Run(name, func(b *testing.B) {
			torchx.Lock()
			f, err := newFlat(newParams())
			if err != nil {
				b.Fatal(err)
			}
			opt, e := newAdamW(f, 0.9, 0.999, 1e-8, 0.01), newEMA(f, 0.9999)
			if !fused {
				withOps(opt)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f.zeroGrad()
				opt.step(1e-3, e)
			}
		})
	}
	b.Run("per-tensor", func(b *testing.B) {
		torchx.Lock()
		params := newParams()
		adamWLoss(params) // defines every gradient
		opt := newPerTensorAdamW(params, 0.9, 0.999, 1e-8, 0.01)
		shadow := make([]*ts.Tensor, len(params))
		for i, p := range params {
			shadow[i] = p.MustZerosLike(false)
			torchx.NoGrad(func() { shadow[i].Copy_(p) })
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			opt.zeroGrad()
			opt.step(1e-3)
			torchx.NoGrad(func() {
				for j, p := range params {
					shadow[j].MustLerp_(p, ts.FloatScalar(1e-4))
				}
			})
		}
	})
}
