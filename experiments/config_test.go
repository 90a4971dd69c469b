package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/config"
)

// The real experiment config: every shipped config loads, and the errors a
// user meets name the key.
func TestShippedConfigsLoad(t *testing.T) {
	for _, name := range []string{"absorbing", "uniform", "embedding", "sedd_absorbing", "sedd_uniform", "ar", "study-cpu", "study-text8", "owt-small", "shakespeare-bpe", "bd3lm", "diffusion-lm"} {
		t.Run(name, func(t *testing.T) {
			withConfigsDir(t)
			cfg, loaded, err := loadConfig(name+".yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Name != name || !strings.Contains(loaded.YAML, "name: "+name) {
				t.Fatalf("loaded %q, resolved YAML:\n%s", cfg.Name, loaded.YAML)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		sets []string
		want string
	}{
		{[]string{"objective.name=mdlm", "process.name=uniform"}, "objective.name: mdlm needs process.name: absorbing, got uniform"},
		{[]string{"device=tpu"}, `device: "tpu" is not one of auto|cpu|cuda|cuda:N`},
		{[]string{"train.stepz=1"}, `unknown key "train.stepz" (did you mean "train.steps"?)`},
		{[]string{"model.heads=5"}, "model.heads"},
		{[]string{"train.device=cpu"}, `unknown key "train.device" (did you mean "device"?)`},
		{[]string{"eval.ar_reference=self"}, `eval.ar_reference: "self" needs objective.name: ar, got mdlm`},
	}
	withConfigsDir(t)
	for _, c := range cases {
		_, _, err := loadConfig("absorbing", c.sets)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-set %v: error %v, want it to contain %q", c.sets, err, c.want)
		}
	}
}

func TestSweepPlan(t *testing.T) {
	s := SweepConfig{Name: "st", Variants: []Variant{{Name: "ar", Set: []string{"objective.name=ar"}}, {Name: "mdlm"}},
		Axes: []Axis{{Key: "train.lr", Values: []any{0.001, 0.002}}}, Seeds: []int64{1, 2}}
	plan := s.Plan()
	if len(plan) != 8 {
		t.Fatalf("%d runs, want 2 variants × 2 lr × 2 seeds = 8", len(plan))
	}
	for i, r := range plan {
		if want := int64(1 + i/4); r.Seed != want {
			t.Errorf("run %d %s: seed %d, want %d (all first seeds before second seeds)", i, r.Name, r.Seed, want)
		}
	}
	first := plan[0]
	if first.Name != "st/ar,train.lr=0.001/seed1" || first.Variant != "ar,train.lr=0.001" {
		t.Errorf("first run %+v", first)
	}
	if got := strings.Join(first.Sets, " "); got != "objective.name=ar train.lr=0.001 seed=1" {
		t.Errorf("first run sets %q", got)
	}
	names := map[string]bool{}
	for _, r := range plan {
		if names[r.Name] {
			t.Errorf("duplicate run name %s", r.Name)
		}
		names[r.Name] = true
	}
	if err := (SweepConfig{Variants: []Variant{{Name: "a"}}}).Validate(); err == nil || !strings.Contains(err.Error(), "sweep.name") {
		t.Errorf("a sweep without a name: %v", err)
	}
}

func TestSweepWaves(t *testing.T) {
	// emb waits for ar; both mdlm and emb come after ar in the plan even
	// though mdlm and emb are listed first.
	s := SweepConfig{Name: "st", Seeds: []int64{1, 2}, Variants: []Variant{
		{Name: "emb", After: []string{"ar"}}, {Name: "mdlm"}, {Name: "ar"}, {Name: "late", After: []string{"emb", "mdlm"}}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range s.Plan() {
		got = append(got, fmt.Sprintf("%s@%d", r.Name, r.Wave))
	}
	// Within a wave, every variant's first seed before any second seed.
	want := "st/mdlm/seed1@0 st/ar/seed1@0 st/mdlm/seed2@0 st/ar/seed2@0 st/emb/seed1@1 st/emb/seed2@1 st/late/seed1@2 st/late/seed2@2"
	if strings.Join(got, " ") != want {
		t.Errorf("plan\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	for _, c := range []struct {
		variants []Variant
		want     string
	}{
		{[]Variant{{Name: "a", After: []string{"b"}}}, `sweep.variants[0].after: "b" is not a variant`},
		{[]Variant{{Name: "a", After: []string{"b"}}, {Name: "b", After: []string{"a"}}}, "cycle: a → b → a"},
		{[]Variant{{Name: "a", After: []string{"a"}}}, "cycle: a → a"},
	} {
		err := SweepConfig{Name: "st", Variants: c.variants}.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.variants, err, c.want)
		}
	}
}

// withConfigsDir runs the test from the repository root, where configs/ is.
func withConfigsDir(t *testing.T) {
	t.Helper()
	t.Chdir("..")
}

// TestCheckDependencies: a run's AR reference (or embedding source) must
// exist, or come from a run still to do in an earlier wave; a finished
// run whose file is gone, or a file no run writes, stops the sweep with a
// message naming both.
func TestCheckDependencies(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "st", "ar", "seed1", "model.safetensors")
	yaml := "name: st\nout_dir: " + dir + "\nsweep:\n  name: st\n  seeds: [1]\n  variants:\n" +
		"    - name: ar\n      set: [process.name=none, objective.name=ar, sampling.sampler=ar]\n" +
		"    - name: mdlm\n      after: [ar]\n      set: [eval.ar_reference=" + ref + "]\n"
	path := filepath.Join(dir, "st.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan := cfg.Sweep.Plan()
	byName := map[string]PlannedRun{}
	for _, r := range plan {
		byName[r.Name] = r
	}
	ar, mdlm := byName["st/ar/seed1"], byName["st/mdlm/seed1"]
	if err := checkDependencies(cfg, path, nil, plan, []PlannedRun{ar, mdlm}); err != nil {
		t.Errorf("ar still to do: %v", err)
	}
	err = checkDependencies(cfg, path, nil, plan, []PlannedRun{mdlm})
	if err == nil || !strings.Contains(err.Error(), "run st/mdlm/seed1 needs "+ref+", which run st/ar/seed1 wrote") {
		t.Errorf("finished ar without weights: %v", err)
	}
	err = checkDependencies(cfg, path, []string{"eval.ar_reference=" + filepath.Join(dir, "nowhere.safetensors")}, plan, []PlannedRun{ar, mdlm})
	if err == nil || !strings.Contains(err.Error(), "which does not exist and no run of the sweep writes") {
		t.Errorf("a reference no run writes: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(ref), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ref, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkDependencies(cfg, path, nil, plan, []PlannedRun{mdlm}); err != nil {
		t.Errorf("weights present: %v", err)
	}
}

// TestStudyConfigsIndependentOfDefaults: a study's results must not move
// when the built-in default (the few-minutes run of `make run`) changes.
// Every key that default sets is perturbed; the studies and the long
// configs must resolve to the same config anyway. (The default once
// changed model.dropout and eval.lambada under the text8 study.)
func TestStudyConfigsIndependentOfDefaults(t *testing.T) {
	withConfigsDir(t)
	perturbed := func() *Config {
		c := DefaultConfig()
		c.Data.Tokenizer, c.Data.Normalize, c.Data.VocabSize, c.Data.SeqLen = "bytes", "none", 77, 40
		c.Model.Preset, c.Model.Dropout = "small", 0.37
		c.Train.Steps, c.Train.BatchSize, c.Train.Warmup, c.Train.LR, c.Train.Schedule = 7, 3, 2, 9e-9, "constant"
		c.Train.EMA, c.Train.CkptEvery, c.Train.EvalEvery = 0.5, 3, 3
		c.Eval.TDraws, c.Eval.MaxBatches, c.Eval.Lambada = 9, 99, "elsewhere.jsonl"
		c.Eval.GenSteps, c.Eval.GenSamples = []int{5}, 3
		c.Sampling.Steps = 11
		return c
	}
	for _, name := range []string{"study-text8", "study-cpu", "owt-small", "shakespeare-bpe"} {
		path, err := config.Resolve(name, []string{"configs"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := config.Load(path, nil, DefaultConfig())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := config.Load(path, nil, perturbed())
		if err != nil {
			t.Fatalf("%s over perturbed defaults: %v", name, err)
		}
		if a.YAML != b.YAML {
			t.Errorf("%s depends on the built-in default:\n%s", name, diffLines(a.YAML, b.YAML))
		}
	}
}

// diffLines lists the lines of a that b lacks.
func diffLines(a, b string) string {
	have := map[string]bool{}
	for _, l := range strings.Split(b, "\n") {
		have[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !have[l] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
