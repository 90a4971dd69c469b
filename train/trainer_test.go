package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestAccumulationEqualsFullBatch trains two steps with the whole batch in
// one pass and with four micro-batches of two rows; gradients and weights
// must agree.
func TestAccumulationEqualsFullBatch(t *testing.T) {
	torchx.Lock()
	run := func(micro int) map[string][]float64 {
		cfg := testConfig()
		cfg.Steps, cfg.MicroBatch, cfg.EMA = 2, micro, 0
		tr, m, _ := newTrainer(t, cfg, false)
		if err := tr.Run(context.Background(), &seqBatcher{vocab: 16, b: 8, l: 6}, m.loss, nil, nil); err != nil {
			t.Fatal(err)
		}
		out := map[string][]float64{}
		for i, name := range tr.trainable {
			out[name] = values(tr.params[i])
			out["grad "+name] = values(tr.params[i].MustGrad(false)) // the last step's gradient
		}
		return out
	}
	full, accum := run(0), run(2)
	for name, want := range full {
		for i := range want {
			if d := math.Abs(accum[name][i] - want[i]); d > 1e-5 {
				t.Fatalf("%s[%d]: 4 micro-batches give %.9g, one batch %.9g", name, i, accum[name][i], want[i])
			}
		}
	}
}

func TestNonFiniteStopsAndKeepsLastCheckpoint(t *testing.T) {
	torchx.Lock()
	cases := []struct {
		name string
		bad  func(loss *ts.Tensor, w *ts.Tensor) *ts.Tensor
		want string
	}{
		{"nan loss", func(loss, _ *ts.Tensor) *ts.Tensor {
			return loss.MustMulScalar(ts.FloatScalar(math.NaN()), true)
		}, "train: step 7: loss is NaN"},
		// √(0·w) has value 0 and gradient (1/2√0)·0 = NaN: a finite loss
		// with a poisoned gradient.
		{"nan gradient", func(loss, w *ts.Tensor) *ts.Tensor {
			z := w.MustMulScalar(ts.FloatScalar(0), false).MustSqrt(true).MustSum(gotch.Float, true)
			return loss.MustAdd(z, true)
		}, "train: step 7: gradient norm is NaN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Steps, cfg.CkptEvery = 10, 5
			tr, m, dir := newTrainer(t, cfg, true)
			step := func(b Batch) (Loss, error) {
				l, err := m.loss(b)
				if err == nil && tr.Step()+1 == 7 {
					l.Value = c.bad(l.Value, m.w1)
				}
				return l, err
			}
			err := tr.Run(context.Background(), &seqBatcher{vocab: 16, b: 8, l: 6}, step, nil, nil)
			if err == nil || !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), checkpoint.Path(dir, 5)+" is intact") {
				t.Fatalf("Run = %v, want ErrNonFinite with %q naming the intact checkpoint", err, c.want)
			}
			if tr.Step() != 6 {
				t.Errorf("trainer stopped at step %d, want 6", tr.Step())
			}
			latest, err := checkpoint.Latest(dir)
			if err != nil || latest != checkpoint.Path(dir, 5) {
				t.Fatalf("Latest = %q, %v; want the step-5 checkpoint", latest, err)
			}
			tensors, _, err := checkpoint.Load(latest)
			if err != nil {
				t.Fatal(err)
			}
			for name, x := range tensors {
				for _, v := range values(x) {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("checkpoint tensor %s holds %v", name, v)
					}
				}
			}
		})
	}
}

// TestCancelWritesCheckpoint cancels the context during step 4: the step
// completes, a checkpoint of it is written, and the error says why.
func TestCancelWritesCheckpoint(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.CkptEvery = 0
	tr, m, dir := newTrainer(t, cfg, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	step := func(b Batch) (Loss, error) {
		if tr.Step()+1 == 4 {
			cancel()
		}
		return m.loss(b)
	}
	err := tr.Run(ctx, &seqBatcher{vocab: 16, b: 8, l: 6}, step, nil, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted after step 4") {
		t.Fatalf("Run = %v, want an interruption after step 4", err)
	}
	entries, err := checkpoint.List(dir)
	if err != nil || len(entries) != 1 || entries[0].Step != 4 {
		t.Fatalf("checkpoints %v (%v), want only step 4", entries, err)
	}
}

// TestMetricsAndEval checks what reaches the sink and that evaluation sees
// the EMA weights.
func TestMetricsAndEval(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.Steps, cfg.LogEvery, cfg.EvalEvery, cfg.MicroBatch = 5, 2, 2, 4
	tr, m, dir := newTrainer(t, cfg, true)
	var seen []float64
	eval := func(step int) (map[string]float64, error) {
		if torchx.GradEnabled() {
			return nil, fmt.Errorf("eval runs with grad mode on")
		}
		seen = values(m.w2)
		return map[string]float64{"nll_bound": float64(step)}, nil
	}
	sink := &memSink{}
	if err := tr.Run(context.Background(), &seqBatcher{vocab: 16, b: 8, l: 6}, m.loss, sink, eval); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range sink.records {
		got = append(got, fmt.Sprintf("%s@%d", r.split, r.step))
		if r.split != "train" {
			continue
		}
		for _, k := range []string{"loss", "lr", "grad_norm", "tokens_per_s", "nll", "tokens"} {
			if _, ok := r.m[k]; !ok {
				t.Errorf("train metrics at step %d lack %s: %v", r.step, k, r.m)
			}
		}
		if r.m["lr"] != cfg.LRAt(r.step) {
			t.Errorf("lr at step %d = %v, want %v", r.step, r.m["lr"], cfg.LRAt(r.step))
		}
		if r.m["tokens"] != 8*5 {
			t.Errorf("tokens per step = %v, want 40 (8 rows × 5 targets)", r.m["tokens"])
		}
		if math.Abs(r.m["loss"]-r.m["nll"]) > 1e-6 {
			t.Errorf("step %d: loss %v and token-weighted nll %v differ", r.step, r.m["loss"], r.m["nll"])
		}
	}
	want := "train@2 valid@2 train@4 valid@4 train@5 valid@5"
	if strings.Join(got, " ") != want {
		t.Errorf("sink calls %q, want %q", strings.Join(got, " "), want)
	}
	tensors, _, err := checkpoint.Load(checkpoint.Path(dir, 5))
	if err != nil {
		t.Fatal(err)
	}
	ema := values(tensors["ema.mlp.w2"])
	for i := range ema {
		if seen[i] != ema[i] {
			t.Fatalf("eval saw w2[%d] = %v, the EMA is %v", i, seen[i], ema[i])
		}
	}
	if model := values(tensors["model.mlp.w2"]); model[0] == ema[0] {
		t.Error("model and EMA weights coincide; the test cannot tell them apart")
	}
	if after := values(m.w2); after[0] != values(tensors["model.mlp.w2"])[0] {
		t.Error("the trained weights were not restored after evaluation")
	}
}

func TestResumeRules(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.Steps = 3
	tr, m, dir := newTrainer(t, cfg, true)
	if err := tr.Run(context.Background(), &seqBatcher{vocab: 16, b: 8, l: 6}, m.loss, nil, nil); err != nil {
		t.Fatal(err)
	}
	cfg.Resume = "never"
	vs2, _ := newModel(false)
	if _, err := New(cfg, vs2, dir, nil); err == nil || !strings.Contains(err.Error(), "train.resume is never, but") {
		t.Errorf("New with resume never over existing checkpoints = %v", err)
	}
	cfg.Resume = checkpoint.Path(dir, 3)
	cfg.Steps = 5
	vs3, _ := newModel(false)
	tr3, err := New(cfg, vs3, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr3.Step() != 3 {
		t.Errorf("resumed from an explicit path at step %d, want 3", tr3.Step())
	}
	if _, err := New(cfg, vs3, t.TempDir(), map[string]string{checkpoint.MetaStep: "1"}); err == nil {
		t.Error("New accepted metadata that overrides the step")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	cases := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.MicroBatch = 40 }, "train.micro_batch: 40 is outside 0..train.batch_size (32)"},
		{func(c *Config) { c.Precision = "fp16" }, "train.precision: fp16 needs dynamic loss scaling"},
		{func(c *Config) { c.Precision = "int8" }, `train.precision: "int8" is not one of auto|fp32|bf16`},
		{func(c *Config) { c.Schedule = "linear" }, `train.schedule: "linear" is not one of constant|cosine`},
		{func(c *Config) { c.Beta2 = 1 }, "train.beta2: 1 is outside [0, 1)"},
		{func(c *Config) { c.Warmup = 3000 }, "train.warmup: 3000 exceeds train.steps (2000)"},
		{func(c *Config) { c.LogEvery = 0 }, "train.log_every: 0 must be positive"},
		{func(c *Config) { c.Resume = "" }, "train.resume: must be auto, never or a checkpoint path"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want %q", err, c.want)
		}
	}
}

func TestWindowWeightsStats(t *testing.T) {
	start := time.Unix(100, 0)
	w := newWindow(start)
	w.addMicro(map[string]float64{"nll": 1, "tokens": 10}, 4)
	w.addMicro(map[string]float64{"nll": 2, "tokens": 30}, 4)
	w.addStep(1.5, 3, 64)
	w.addMicro(map[string]float64{"nll": 4, "tokens": 40}, 8)
	w.addStep(2.5, 5, 64)
	m := w.metrics(1e-3, start.Add(2*time.Second))
	want := map[string]float64{"nll": (10*1 + 30*2 + 40*4) / 80.0, "tokens": 40, "loss": 2, "grad_norm": 4, "lr": 1e-3, "tokens_per_s": 64}
	for k, v := range want {
		if math.Abs(m[k]-v) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	// Without a tokens stat, rows weigh.
	w = newWindow(start)
	w.addMicro(map[string]float64{"acc": 0.5}, 1)
	w.addMicro(map[string]float64{"acc": 1}, 3)
	if got := w.metrics(0, start)["acc"]; got != 0.875 {
		t.Errorf("row-weighted acc = %v, want 0.875", got)
	}
}

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 0, 10, 5)
	t0 := time.Unix(1000, 0)
	p.start = t0
	for step := 1; step <= 10; step++ {
		p.now = func() time.Time { return t0.Add(time.Duration(step) * time.Second) }
		p.update(step, float64(step), 1e-3, 100)
	}
	p.finish()
	want := "step 5/10  50% loss 3.0000 lr 1.00e-03 100 tok/s ETA 5s\n" +
		"step 10/10 100% loss 8.0000 lr 1.00e-03 100 tok/s ETA 0s\n"
	if buf.String() != want {
		t.Errorf("progress wrote\n%q\nwant\n%q", buf.String(), want)
	}
	// On a terminal the bar (package progress) carries the same detail.
	p.lossSum, p.lossN = 6, 2
	if got, want := p.detail(1e-3, t0.Add(5*time.Second)), "loss 3.0000 lr 1.00e-03 200 tok/s"; got != want {
		t.Errorf("terminal detail %q, want %q", got, want)
	}
}

func TestPrecision(t *testing.T) {
	torchx.Lock()
	cases := []struct {
		asked string
		dev   gotch.Device
		want  string
		err   string
	}{
		{"auto", gotch.CPU, "fp32", ""},
		{"fp32", gotch.CPU, "fp32", ""},
		{"bf16", gotch.CPU, "", "bf16 autocast needs a CUDA device, this run is on cpu"},
		// No GPU is needed to check that the autocast dtype setter resolves
		// in this libtorch; the device value only selects the branch.
		{"bf16", gotch.CudaBuilder(0), "bf16", ""},
		{"auto", gotch.CudaBuilder(0), "bf16", ""},
	}
	for _, c := range cases {
		got, err := resolvePrecision(c.asked, c.dev)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("resolvePrecision(%s, %s) = %v, want error %q", c.asked, torchx.DeviceName(c.dev), err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("resolvePrecision(%s, %s) = %q, %v; want %q", c.asked, torchx.DeviceName(c.dev), got, err, c.want)
		}
	}
	sentinel := errors.New("from fn")
	if err := autocast(func() error { return sentinel }); err != sentinel {
		t.Errorf("autocast returned %v, want fn's error", err)
	}
}

func TestInitialEMAWeight(t *testing.T) {
	for _, c := range []struct {
		ema   float64
		steps int
		want  float64
	}{
		{0, 100, 0},
		{0.995, 250, 0.285608}, // the short-run trap the warning is for
		{0.98, 250, 0.006405},  // configs/study-cpu.yaml
		{0.9999, 1000000, 0},   // MDLM's: underflows to ~0
	} {
		got := Config{EMA: c.ema, Steps: c.steps}.initialEMAWeight()
		if math.Abs(got-c.want) > 1e-5 {
			t.Errorf("ema %g over %d steps: initial share %g, want %g", c.ema, c.steps, got, c.want)
		}
	}
}
