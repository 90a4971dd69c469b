package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type trainSec struct {
	Steps int     `mapstructure:"steps"`
	LR    float64 `mapstructure:"lr"`
}

type procSec struct {
	Name string         `mapstructure:"name"`
	Eps  float64        `mapstructure:"eps"`
	Ks   []int          `mapstructure:"ks"`
	Grid map[string]any `mapstructure:"grid"`
}

type testCfg struct {
	Name    string   `mapstructure:"name"`
	Device  string   `mapstructure:"device"`
	Train   trainSec `mapstructure:"train"`
	Process procSec  `mapstructure:"process"`
}

func defaults() *testCfg {
	return &testCfg{Name: "run", Device: "auto", Train: trainSec{Steps: 100, LR: 3e-4}, Process: procSec{Name: "absorbing", Eps: 1e-3}}
}

func (c *testCfg) Validate() error {
	switch c.Process.Name {
	case "absorbing", "uniform":
	default:
		return fmt.Errorf("process.name: %q is not one of absorbing|uniform", c.Process.Name)
	}
	if c.Train.Steps <= 0 {
		return fmt.Errorf("train.steps: must be positive, got %d", c.Train.Steps)
	}
	return nil
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	cases := []struct {
		name, yaml string
		sets       []string
		check      func(*testCfg) string // "" when fine
		err        string                // exact message after the "config <file>: " prefix
	}{
		{name: "defaults kept", yaml: "name: a\n", check: func(c *testCfg) string {
			if c.Train.Steps != 100 || c.Train.LR != 3e-4 || c.Process.Name != "absorbing" || c.Name != "a" {
				return fmt.Sprintf("got %+v", *c)
			}
			return ""
		}},
		{name: "file overrides", yaml: "train:\n  steps: 7\n  lr: 1e-3\nprocess:\n  ks: [1, 2]\n", check: func(c *testCfg) string {
			if c.Train.Steps != 7 || c.Train.LR != 1e-3 || len(c.Process.Ks) != 2 {
				return fmt.Sprintf("got %+v", *c)
			}
			return ""
		}},
		{name: "set overrides file", yaml: "train:\n  steps: 7\n", sets: []string{"train.steps=9", "process.name=uniform", "process.ks=[3]"}, check: func(c *testCfg) string {
			if c.Train.Steps != 9 || c.Process.Name != "uniform" || len(c.Process.Ks) != 1 || c.Process.Ks[0] != 3 {
				return fmt.Sprintf("got %+v", *c)
			}
			return ""
		}},
		{name: "empty set clears a string", yaml: "device: cuda\n", sets: []string{"device="}, check: func(c *testCfg) string {
			if c.Device != "" {
				return fmt.Sprintf("device %q after device=, want empty", c.Device)
			}
			return ""
		}},
		{name: "empty set of a number", sets: []string{"train.steps="}, err: `train.steps: want an integer, got "" (a string)`},
		{name: "open map accepts any sub-key", yaml: "process:\n  grid:\n    anything: 1\n"},
		{name: "unknown key with suggestion", yaml: "train:\n  setps: 5\n", err: `unknown key "train.setps" (did you mean "train.steps"?)`},
		{name: "key in the wrong section", yaml: "steps: 5\n", err: `unknown key "steps" (did you mean "train.steps"?)`},
		{name: "unknown key far from all", yaml: "zzzzzzzzzzzz: 1\n", err: `unknown key "zzzzzzzzzzzz"`},
		{name: "wrong type int", yaml: "train:\n  steps: ten\n", err: `train.steps: want an integer, got "ten" (a string)`},
		{name: "wrong type float", yaml: "train:\n  lr: fast\n", err: `train.lr: want a number, got "fast" (a string)`},
		{name: "fractional int", yaml: "train:\n  steps: 2.5\n", err: `train.steps: want an integer, got 2.5 (float64)`},
		{name: "wrong list item", yaml: "process:\n  ks: [1, x]\n", err: `process.ks: item 1: want an integer, got "x" (a string)`},
		{name: "bad enum", yaml: "process:\n  name: gaussian\n", err: `process.name: "gaussian" is not one of absorbing|uniform`},
		{name: "invalid value", sets: []string{"train.steps=0"}, err: `train.steps: must be positive, got 0`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = write(t, c.yaml)
			}
			cfg := defaults()
			_, err := Load(path, c.sets, cfg)
			if c.err != "" {
				where := path
				if where == "" {
					where = "defaults"
				}
				want := "config " + where + ": " + c.err
				if err == nil || err.Error() != want {
					t.Fatalf("error = %v\nwant    %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				if msg := c.check(cfg); msg != "" {
					t.Fatal(msg)
				}
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	cases := []struct{ set, want string }{
		{"train.steps", `-set "train.steps": want key=value`},
		{"train.stepz=3", `-set train.stepz: unknown key "train.stepz" (did you mean "train.steps"?)`},
	}
	for _, c := range cases {
		_, err := Load("", []string{c.set}, defaults())
		if err == nil || err.Error() != c.want {
			t.Errorf("-set %s: error = %v, want %s", c.set, err, c.want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Resolve("nope", []string{dir})
	want := fmt.Sprintf(`config "nope": no such file (looked in . and %s)`, dir)
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "gone.yaml"), nil, defaults())
	if err == nil || !strings.HasPrefix(err.Error(), "config "+filepath.Join(dir, "gone.yaml")+": ") {
		t.Fatalf("error = %v, want it to name the file", err)
	}
}

func TestResolveBareName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "absorbing.yaml")
	os.WriteFile(p, []byte("name: x\n"), 0o644)
	for _, name := range []string{"absorbing", "absorbing.yaml"} {
		got, err := Resolve(name, []string{dir})
		if err != nil || got != p {
			t.Errorf("Resolve(%q) = %q, %v; want %q", name, got, err, p)
		}
	}
}

func TestDumpRoundTrip(t *testing.T) {
	cfg := defaults()
	cfg.Train.Steps = 42
	l, err := Load(write(t, "train:\n  steps: 42\n"), nil, defaults())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.YAML, "steps: 42") || !strings.Contains(l.YAML, "name: absorbing") {
		t.Fatalf("resolved YAML lacks values:\n%s", l.YAML)
	}
	// The dump loads back to the same config.
	back := defaults()
	l2, err := Load(write(t, l.YAML), nil, back)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Hash != l.Hash || back.Train.Steps != 42 {
		t.Fatalf("round trip changed the config: %s vs %s", l.Hash, l2.Hash)
	}
}
