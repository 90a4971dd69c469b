package main

import (
	"strings"
	"testing"
)

// The real experiment config: every shipped config loads, and the errors a
// user meets name the key.
func TestShippedConfigsLoad(t *testing.T) {
	for _, name := range []string{"absorbing", "uniform", "embedding", "sedd_absorbing", "sedd_uniform", "ar"} {
		t.Run(name, func(t *testing.T) {
			withConfigsDir(t)
			cfg, loaded, err := loadConfig(name, nil)
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

// withConfigsDir runs the test from the repository root, where configs/ is.
func withConfigsDir(t *testing.T) {
	t.Helper()
	t.Chdir("..")
}
