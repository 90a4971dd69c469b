package models

import (
	"syscall"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// BenchmarkForwardBackward times the model's share of a training step,
// zero_grad + forward + mean cross-entropy + backward (no optimizer step),
// at B = 8, L = 128, V = 8192 for the tiny and small-cpu presets in the
// three uses of the backbone, and reports tokens per second and the
// process's CPU time per step. On a shared machine the CPU time is the
// steadier number; compare it with OPENBLAS_NUM_THREADS=1, where no BLAS
// thread spins. The PyTorch eager peer on the same libtorch is
// testdata/peer.py (same model, same step; run it with /usr/bin/python3).
// It also counts the Go tensors a step makes (the forward's ops; backward
// runs in libtorch).
//
//	go test ./models -run '^$' -bench ForwardBackward
func BenchmarkForwardBackward(b *testing.B) {
	const batch, length, vocab = 8, 128, 8192
	uses := []struct {
		name string
		spec Spec
	}{
		{"mdlm", Spec{VocabIn: vocab + 1, VocabOut: vocab}},
		{"sedd", Spec{VocabIn: vocab + 1, VocabOut: vocab, TimeCond: true}},
		{"ar", Spec{VocabIn: vocab, VocabOut: vocab, Causal: true}},
	}
	for _, preset := range []string{"tiny", "small-cpu"} {
		for _, use := range uses {
			b.Run(preset+"/"+use.name, func(b *testing.B) {
				torchx.Lock() // a sub-benchmark runs on its own goroutine
				cfg := withPreset(preset)
				cfg.MaxLen = length
				m, vs := newTestModel(b, cfg, use.spec, 1)
				opt, err := nn.DefaultAdamConfig().Build(vs, 1e-3)
				if err != nil {
					b.Fatal(err)
				}
				x := tokenTensor(randomRows(batch, length, vocab, 1))
				var sigma *ts.Tensor
				if use.spec.TimeCond {
					sigma = sigmaTensor(0.1, 0.5, 1, 2, 3, 4, 5, 6)
				}
				step := func() { trainingStep(opt, m, x, sigma) }
				step() // warm-up: first-touch allocations, thread pools
				cpu0, made0 := cpuSeconds(), ts.TensorCount
				b.ResetTimer()
				for range b.N {
					step()
				}
				b.ReportMetric(float64(batch*length)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				b.ReportMetric(1e3*(cpuSeconds()-cpu0)/float64(b.N), "cpu-ms/op")
				// Go tensors made per step: the ops whose fixed cost
				// BenchmarkOpOverhead (package torchx) measures.
				b.ReportMetric(float64(ts.TensorCount-made0)/float64(b.N), "tensors/op")
			})
		}
	}
}

// cpuSeconds is the user and system time this process has used.
func cpuSeconds() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		panic(err)
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e9
}
