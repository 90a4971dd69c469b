package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dlmlab/difflm/dist"
	"github.com/dlmlab/difflm/internal/ranktest"
	"github.com/dlmlab/difflm/torchx"
)

// ddpResult is what one training run reports: its logged losses and its
// final weights, by name.
type ddpResult struct {
	Losses  []float64
	Weights map[string][]float64
}

// ddpTrain trains the noise-free tiny model for cfg.Steps steps, as one
// rank of coll when coll is not nil.
func ddpTrain(t *testing.T, cfg Config, dir string, coll Collective) ddpResult {
	t.Helper()
	vs, m := newModel(false)
	tr, err := New(cfg, vs, dir, map[string]string{"config": "test"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Progress = nil
	if coll != nil {
		if err := tr.Distribute(coll); err != nil {
			t.Fatal(err)
		}
	}
	sink := &memSink{}
	if err := tr.Run(t.Context(), &seqBatcher{vocab: 16, b: cfg.BatchSize, l: 12}, m.loss, sink, nil); err != nil {
		t.Fatal(err)
	}
	res := ddpResult{Weights: map[string][]float64{}}
	for _, r := range sink.records {
		res.Losses = append(res.Losses, r.m["loss"])
	}
	for name, v := range tr.vars {
		res.Weights[name] = values(v)
	}
	return res
}

// TestDDPRankHelper is one rank of TestDataParallelEqualsOneProcess.
func TestDDPRankHelper(t *testing.T) {
	spec := os.Getenv("DDP_HELPER")
	if spec == "" {
		t.Skip("a rank of TestDataParallelEqualsOneProcess; run by it")
	}
	torchx.Lock()
	var cfg Config
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		t.Fatal(err)
	}
	o, ok, err := dist.FromEnv(os.Getenv)
	if err != nil || !ok {
		t.Fatalf("dist.FromEnv: %v %v", ok, err)
	}
	o.Backend, o.Timeout = "gloo", 30*time.Second
	g, err := dist.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res := ddpTrain(t, cfg, os.Getenv("DDP_DIR"), g)
	b, _ := json.Marshal(res)
	os.Stdout.WriteString("RESULT " + string(b) + "\n")
}

// runRanks trains cfg in world processes and returns each rank's result.
func runRanks(t *testing.T, cfg Config, world int, dir string) []ddpResult {
	t.Helper()
	spec, _ := json.Marshal(cfg)
	outs, errs := ranktest.Run(t, world, "TestDDPRankHelper", "DDP_HELPER="+string(spec), "DDP_DIR="+dir)
	res := make([]ddpResult, world)
	for r := range outs {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v\n%s", r, errs[r], outs[r])
		}
		if err := json.Unmarshal([]byte(ranktest.Result(outs[r])), &res[r]); err != nil || res[r].Weights == nil {
			t.Fatalf("rank %d reported nothing (%v):\n%s", r, err, outs[r])
		}
	}
	return res
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	if len(a) != len(b) {
		return math.Inf(1)
	}
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// Two ranks with half the batch each train exactly as one process with the
// whole batch: same losses, same final weights (to float-order noise),
// with and without gradient accumulation; rank 0 alone writes checkpoints.
func TestDataParallelEqualsOneProcess(t *testing.T) {
	torchx.Lock()
	for _, micro := range []int{0, 2} {
		cfg := testConfig()
		cfg.Steps, cfg.CkptEvery, cfg.MicroBatch = 6, 3, micro
		one := ddpTrain(t, cfg, filepath.Join(t.TempDir(), "one"), nil)
		dir := filepath.Join(t.TempDir(), "two")
		two := runRanks(t, cfg, 2, dir)
		for r, got := range two {
			if d := maxDiff(got.Losses, one.Losses); d > 1e-5 {
				t.Errorf("micro %d, rank %d: losses %v, one process %v (max diff %.2g)", micro, r, got.Losses, one.Losses, d)
			}
			for name, w := range one.Weights {
				if d := maxDiff(got.Weights[name], w); d > 1e-5 {
					t.Errorf("micro %d, rank %d: %s differs from one process by %.2g", micro, r, name, d)
				}
			}
		}
		ckpts, _ := filepath.Glob(filepath.Join(dir, "ckpt-*"))
		if len(ckpts) == 0 {
			t.Errorf("micro %d: no checkpoint written by rank 0 in %s", micro, dir)
		}
	}
}

// A job checkpointed by two ranks resumes as one process (another world
// size) at the same data position and step, and goes on as the one-process
// run it would have been, to float-order noise.
func TestResumeAtAnotherWorldSize(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.Steps, cfg.CkptEvery = 6, 3
	one := ddpTrain(t, cfg, filepath.Join(t.TempDir(), "one"), nil)

	dir := filepath.Join(t.TempDir(), "job")
	first := cfg
	first.Steps = 3 // two ranks write the checkpoint of step 3
	runRanks(t, first, 2, dir)
	rest := ddpTrain(t, cfg, dir, nil) // resume = auto: steps 4-6 as one process
	if len(rest.Losses) != 3 {
		t.Fatalf("the resumed run logged %d steps, want 3 (steps 4-6)", len(rest.Losses))
	}
	if d := maxDiff(rest.Losses, one.Losses[3:]); d > 1e-5 {
		t.Errorf("steps 4-6 after resuming at world size 1: %v, uninterrupted %v", rest.Losses, one.Losses[3:])
	}
	for name, w := range one.Weights {
		if d := maxDiff(rest.Weights[name], w); d > 1e-5 {
			t.Errorf("%s differs from the uninterrupted run by %.2g", name, d)
		}
	}
}
