package results

import (
	"math"
	"testing"
)

// A run killed after step 20 resumes from its step-10 checkpoint and logs
// steps 10..30 again, re-evaluates and re-samples: no row may be duplicated,
// and the later values win.
func TestResumeDoesNotDuplicate(t *testing.T) {
	s := newStore(t)
	info := RunInfo{Name: "r", ConfigHash: "h"}
	id, _, err := s.StartRun(info)
	if err != nil {
		t.Fatal(err)
	}
	sink := s.Sink(id)
	attempt := func(from, to int, scale float64) {
		t.Helper()
		var ms MetricSink = sink // training sees only the interface
		for step := from; step <= to; step += 10 {
			if err := ms.LogMetrics(step, SplitTrain, map[string]float64{"loss": scale * float64(step), "lr": 1e-3}); err != nil {
				t.Fatal(err)
			}
		}
		if err := ms.LogMetrics(to, SplitValid, map[string]float64{"loss": scale}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddEvaluation(Evaluation{RunID: id, Task: TaskGen, Metric: MetricGenPPL, Value: scale, Stderr: 0.1, N: 8,
			Params: map[string]any{"steps": 64, "sampler": "ancestral"}}); err != nil {
			t.Fatal(err)
		}
		// Same key with the params map built differently (float, other key order).
		if err := s.AddEvaluation(Evaluation{RunID: id, Task: TaskGen, Metric: MetricGenPPL, Value: scale, Stderr: 0.1, N: 8,
			Params: map[string]any{"sampler": "ancestral", "steps": 64.0}}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSamples([]Sample{
			{RunID: id, Sampler: "ancestral", Steps: 64, Idx: 0, Text: "a", Scores: map[string]float64{"gen_ppl": scale}, ModelCalls: 64, TokensPerS: 100},
			{RunID: id, Sampler: "ancestral", Steps: 64, Idx: 1, Text: "b", ModelCalls: 64, TokensPerS: 120},
		}); err != nil {
			t.Fatal(err)
		}
	}
	attempt(0, 20, 1)
	if _, resumed, err := s.StartRun(info); err != nil || !resumed {
		t.Fatalf("resume: %v %v", resumed, err)
	}
	attempt(10, 30, 2)
	if err := s.FinishRun(id, nil); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		what  string
		query string
		want  int
	}{
		{"train loss rows", `SELECT COUNT(*) FROM metrics WHERE name = 'loss' AND split = 'train'`, 4}, // steps 0,10,20,30
		{"valid loss rows", `SELECT COUNT(*) FROM metrics WHERE name = 'loss' AND split = 'valid'`, 2}, // steps 20,30
		{"lr rows", `SELECT COUNT(*) FROM metrics WHERE name = 'lr'`, 4},
		{"evaluations", `SELECT COUNT(*) FROM evaluations`, 1},
		{"samples", `SELECT COUNT(*) FROM samples`, 2},
	} {
		if got := count(t, s, tc.query); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.what, got, tc.want)
		}
	}
	pts, err := s.Metrics(id, "loss")
	if err != nil {
		t.Fatal(err)
	}
	want := []MetricPoint{{Step: 0, Split: "train", Value: 0}, {Step: 10, Split: "train", Value: 20},
		{Step: 20, Split: "train", Value: 40}, {Step: 30, Split: "train", Value: 60},
		{Step: 20, Split: "valid", Value: 1}, {Step: 30, Split: "valid", Value: 2}}
	if len(pts) != len(want) {
		t.Fatalf("points %+v", pts)
	}
	for i, p := range pts {
		if p.Step != want[i].Step || p.Split != want[i].Split || p.Value != want[i].Value || p.Time.IsZero() {
			t.Errorf("point %d = %+v, want %+v", i, p, want[i])
		}
	}
	evals, err := s.Evaluations([]int64{id})
	if err != nil || len(evals) != 1 || evals[0].Value != 2 || evals[0].Params["steps"] != 64.0 {
		t.Fatalf("evaluations %+v, %v", evals, err)
	}
	samples, err := s.Samples(id)
	if err != nil || len(samples) != 2 || samples[0].Scores["gen_ppl"] != 2 || samples[1].TokensPerS != 120 {
		t.Fatalf("samples %+v, %v", samples, err)
	}
}

// NaN is a legitimate value (a diverged loss): it must round-trip, not fail.
func TestNaNRoundTrip(t *testing.T) {
	s := newStore(t)
	id, _, err := s.StartRun(RunInfo{Name: "nan"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LogMetrics(id, 1, SplitTrain, map[string]float64{"loss": math.NaN(), "grad_norm": math.Inf(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvaluation(Evaluation{RunID: id, Task: TaskValid, Metric: MetricPPLBound, Value: math.NaN(), Stderr: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSamples([]Sample{{RunID: id, Sampler: "x", Steps: 8, Scores: map[string]float64{"gen_ppl": math.NaN()}, TokensPerS: math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	loss, _ := s.Metrics(id, "loss")
	gn, _ := s.Metrics(id, "grad_norm")
	evals, _ := s.Evaluations([]int64{id})
	samples, _ := s.Samples(id)
	if len(loss) != 1 || !math.IsNaN(loss[0].Value) || len(gn) != 1 || !math.IsInf(gn[0].Value, 1) {
		t.Fatalf("metrics %+v %+v", loss, gn)
	}
	if len(evals) != 1 || !math.IsNaN(evals[0].Value) || !math.IsNaN(evals[0].Stderr) {
		t.Fatalf("evaluations %+v", evals)
	}
	if len(samples) != 1 || !math.IsNaN(samples[0].Scores["gen_ppl"]) || !math.IsNaN(samples[0].TokensPerS) {
		t.Fatalf("samples %+v", samples)
	}
	if err := s.LogMetrics(id, 1, "test", map[string]float64{"loss": 1}); err == nil {
		t.Fatal("split 'test' was accepted")
	}
}
