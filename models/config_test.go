package models

import (
	"strings"
	"testing"

	"github.com/dlmlab/difflm/torchx"
)

func TestResolveFillsPresets(t *testing.T) {
	cases := []struct {
		preset                     string
		layers, width, heads, cond int
	}{
		{"tiny", 4, 128, 4, 64},
		{"small-cpu", 4, 256, 4, 128},
		{"small", 12, 768, 12, 128},
		{"medium", 24, 1024, 16, 128},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Preset = c.preset
		r, err := cfg.Resolve()
		if err != nil {
			t.Fatalf("%s: %v", c.preset, err)
		}
		if r.Layers != c.layers || r.Width != c.width || r.Heads != c.heads || r.CondDim != c.cond || r.MLPRatio != 4 {
			t.Errorf("%s resolved to %+v", c.preset, r)
		}
		if r.MaxLen != 1024 || r.Dropout != 0.1 || r.Attention != "math" {
			t.Errorf("%s: run choices changed by the preset: %+v", c.preset, r)
		}
	}
	// Repeating a preset's own value is allowed.
	cfg := DefaultConfig()
	cfg.Width = 128
	if err := cfg.Validate(); err != nil {
		t.Errorf("tiny with width 128: %v", err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	custom := func(edit func(*Config)) Config {
		c := Config{Preset: "custom", Layers: 2, Width: 64, Heads: 4, MLPRatio: 4, CondDim: 32, MaxLen: 128, Attention: "math"}
		edit(&c)
		return c
	}
	cases := []struct {
		cfg  Config
		want string
	}{
		{custom(func(c *Config) { c.Heads = 5 }), "model.heads: 5 does not divide model.width 64"},
		{custom(func(c *Config) { c.Heads = 64 }), "model.heads: head width 1"},
		{custom(func(c *Config) { c.Layers = 0 }), "model.layers: 0, want a positive integer"},
		{custom(func(c *Config) { c.Width = -8 }), "model.width: -8"},
		{custom(func(c *Config) { c.CondDim = 0 }), "model.cond_dim: 0"},
		{custom(func(c *Config) { c.CondDim = 7 }), "model.cond_dim: 7 must be even"},
		{custom(func(c *Config) { c.MaxLen = 0 }), "model.max_len: 0"},
		{custom(func(c *Config) { c.MLPRatio = 0 }), "model.mlp_ratio: 0"},
		{custom(func(c *Config) { c.Dropout = 1 }), "model.dropout: 1"},
		{custom(func(c *Config) { c.Attention = "flash" }), `model.attention: "flash", want math or fused`},
		{Config{Preset: "huge", MaxLen: 8, Attention: "math"}, `model.preset: "huge" is not one of [medium small small-cpu tiny] or custom`},
		{Config{Preset: "small", Width: 512, MaxLen: 8, Attention: "math"}, "model.width: 512 contradicts preset small (768)"},
		{Config{Preset: "tiny", MLPRatio: 2, MaxLen: 8, Attention: "math"}, "model.mlp_ratio: 2 contradicts preset tiny (4)"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	if err := custom(func(*Config) {}).Validate(); err != nil {
		t.Errorf("valid custom config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

// closedForm counts a model's parameters from the architecture:
// embedding V_in·W; per block two norm scales, qkv and out projections
// without bias, the MLP with biases and, with time conditioning, the adaLN
// layer C→6W; the time MLP two C×C layers with biases; the output norm,
// adaLN C→2W and the projection W→V_out with bias.
func closedForm(c Config, s Spec) int64 {
	w, f, cd := int64(c.Width), int64(c.hidden()), int64(c.CondDim)
	vin, vout := int64(s.VocabIn), int64(s.VocabOut)
	block := 2*w + 3*w*w + w*w + (w*f + f) + (f*w + w)
	output := w + w*vout + vout
	var time int64
	if s.TimeCond {
		block += cd*6*w + 6*w
		output += cd*2*w + 2*w
		time = 2 * (cd*cd + cd)
	}
	return vin*w + time + int64(c.Layers)*block + output
}

func TestPresetParamCounts(t *testing.T) {
	torchx.Lock()
	odd := Config{Preset: "custom", Layers: 3, Width: 40, Heads: 5, MLPRatio: 2.5, CondDim: 6, MaxLen: 16, Attention: "math"}
	checkParamCounts(t, DefaultConfig(), withPreset("small-cpu"), odd)
}

func withPreset(name string) Config {
	c := DefaultConfig()
	c.Preset = name
	return c
}

// checkParamCounts builds each config with and without time conditioning
// and compares NumParams and the var store's count with closedForm.
func checkParamCounts(t *testing.T, cfgs ...Config) {
	for _, cfg := range cfgs {
		for _, timeCond := range []bool{false, true} {
			spec := Spec{VocabIn: 9, VocabOut: 8, TimeCond: timeCond}
			m, vs := newTestModel(t, cfg, spec, 11)
			r, _ := cfg.Resolve()
			want := closedForm(r, spec)
			var stored int64
			for _, v := range vs.TrainableVariables() {
				stored += int64(v.Numel())
			}
			if m.NumParams() != want || stored != want {
				t.Errorf("%s time=%v: NumParams %d, var store %d, closed form %d", cfg.Preset, timeCond, m.NumParams(), stored, want)
			}
			vs.Destroy()
		}
	}
}
