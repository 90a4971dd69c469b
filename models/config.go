// Package models holds the one transformer backbone that every method in
// the project shares: MDLM, SEDD and D3PM use it bidirectionally (SEDD and
// D3PM with a time input), the autoregressive baseline uses it causally.
// The network knows nothing about diffusion beyond those two switches.
package models

import (
	"fmt"
	"slices"
)

// Config is the `model` section of an experiment's configuration.
//
// A named preset fixes the architecture (layers, width, heads, mlp_ratio,
// cond_dim); those keys may then be left out (zero) or repeat the preset's
// value, and anything else is an error rather than a silent override. The
// preset "custom" takes all five from the config. Dropout, max_len,
// attention and lanes are run choices and never come from a preset.
type Config struct {
	Preset    string  `mapstructure:"preset"` // tiny | small-cpu | small | medium | custom
	Layers    int     `mapstructure:"layers"`
	Width     int     `mapstructure:"width"`
	Heads     int     `mapstructure:"heads"`
	MLPRatio  float64 `mapstructure:"mlp_ratio"`
	CondDim   int     `mapstructure:"cond_dim"` // time-embedding width (adaLN)
	Dropout   float64 `mapstructure:"dropout"`
	MaxLen    int     `mapstructure:"max_len"`   // longest sequence (rotary table)
	Attention string  `mapstructure:"attention"` // math | fused
	// Lanes splits a CPU training pass's batch into this many row groups,
	// each through the blocks on its own thread (lanes.go); 0 (the
	// default) is one per libtorch thread, 1 turns it off.
	Lanes int `mapstructure:"lanes"`
}

// arch is the part of Config a preset decides.
type arch struct {
	layers, width, heads int
	mlpRatio             float64
	condDim              int
}

// presets: tiny is for unit tests (about 1M parameters outside the
// vocabulary-sized embedding and output), small-cpu trains in minutes on two
// cores, small and medium are MDLM's OpenWebText models. A function rather
// than a package variable, so that nothing can change them.
func presets() map[string]arch {
	return map[string]arch{
		"tiny":      {layers: 4, width: 128, heads: 4, mlpRatio: 4, condDim: 64},
		"small-cpu": {layers: 4, width: 256, heads: 4, mlpRatio: 4, condDim: 128},
		"small":     {layers: 12, width: 768, heads: 12, mlpRatio: 4, condDim: 128},
		"medium":    {layers: 24, width: 1024, heads: 16, mlpRatio: 4, condDim: 128},
	}
}

// PresetNames lists the named presets, for help texts and tests.
func PresetNames() []string {
	var names []string
	for n := range presets() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DefaultConfig is the tiny preset with MDLM's dropout (0.1), a rotary
// table for 1024 positions and the matmul-softmax attention that every
// libtorch has. The architecture keys stay zero: Resolve fills them, so a
// config that only changes the preset does not trip over tiny's values.
func DefaultConfig() Config {
	return Config{Preset: "tiny", Dropout: 0.1, MaxLen: 1024, Attention: "math"}
}

// Resolve returns the config with the architecture filled in from the
// preset (unless custom) and checks the result.
func (c Config) Resolve() (Config, error) {
	if c.Preset != "custom" {
		a, ok := presets()[c.Preset]
		if !ok {
			return c, fmt.Errorf("model.preset: %q is not one of %v or custom", c.Preset, PresetNames())
		}
		if err := c.fill(a); err != nil {
			return c, err
		}
	}
	return c, c.check()
}

// Validate reports the first problem Resolve would find.
func (c Config) Validate() error {
	_, err := c.Resolve()
	return err
}

// fill copies the preset's architecture into the zero fields and rejects
// fields that contradict it.
func (c *Config) fill(a arch) error {
	ints := []struct {
		key    string
		field  *int
		preset int
	}{
		{"layers", &c.Layers, a.layers},
		{"width", &c.Width, a.width},
		{"heads", &c.Heads, a.heads},
		{"cond_dim", &c.CondDim, a.condDim},
	}
	for _, f := range ints {
		if *f.field != 0 && *f.field != f.preset {
			return fmt.Errorf("model.%s: %d contradicts preset %s (%d); leave it out or use preset custom", f.key, *f.field, c.Preset, f.preset)
		}
		*f.field = f.preset
	}
	if c.MLPRatio != 0 && c.MLPRatio != a.mlpRatio {
		return fmt.Errorf("model.mlp_ratio: %g contradicts preset %s (%g); leave it out or use preset custom", c.MLPRatio, c.Preset, a.mlpRatio)
	}
	c.MLPRatio = a.mlpRatio
	return nil
}

// check validates a resolved config.
func (c Config) check() error {
	for _, f := range []struct {
		key string
		v   int
	}{{"layers", c.Layers}, {"width", c.Width}, {"heads", c.Heads}, {"cond_dim", c.CondDim}, {"max_len", c.MaxLen}} {
		if f.v <= 0 {
			return fmt.Errorf("model.%s: %d, want a positive integer", f.key, f.v)
		}
	}
	switch {
	case c.Width%c.Heads != 0:
		return fmt.Errorf("model.heads: %d does not divide model.width %d", c.Heads, c.Width)
	case (c.Width/c.Heads)%2 != 0:
		return fmt.Errorf("model.heads: head width %d (model.width %d / model.heads %d) must be even for rotary embeddings", c.Width/c.Heads, c.Width, c.Heads)
	case c.CondDim%2 != 0:
		return fmt.Errorf("model.cond_dim: %d must be even (cosine and sine halves of the time features)", c.CondDim)
	case !(c.MLPRatio > 0) || c.hidden() < 1:
		return fmt.Errorf("model.mlp_ratio: %g gives an MLP of %d units, want at least 1", c.MLPRatio, c.hidden())
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("model.dropout: %g, want 0 <= dropout < 1", c.Dropout)
	case c.Attention != "math" && c.Attention != "fused":
		return fmt.Errorf("model.attention: %q, want math or fused", c.Attention)
	case c.Lanes < 0:
		return fmt.Errorf("model.lanes: %d, want 0 (one per thread), 1 (off) or more", c.Lanes)
	}
	return nil
}

// hidden is the MLP's inner width.
func (c Config) hidden() int { return int(c.MLPRatio*float64(c.Width) + 0.5) }

// headDim is the width of one attention head.
func (c Config) headDim() int { return c.Width / c.Heads }
