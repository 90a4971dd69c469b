package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/train"
)

// Config is one experiment: what data, which network, which forward
// process and objective, how to train, evaluate and sample, and (for a
// sweep) which variants to run. Each section belongs to the package that
// uses it; this struct only composes them.
type Config struct {
	// Name names the run: its folder under out_dir and its row in the
	// database. Sweeps derive run names from it.
	Name string `mapstructure:"name"`
	// OutDir holds one folder per run (checkpoints, config, samples).
	OutDir string `mapstructure:"out_dir"`
	// DB is the results database (SQLite); relative paths are under out_dir.
	DB string `mapstructure:"db"`
	// Device is auto | cpu | cuda | cuda:N.
	Device string `mapstructure:"device"`
	// Threads is libtorch's intra-op thread count (0 = its default).
	Threads int `mapstructure:"threads"`
	// Seed seeds initialisation, noise and sampling (data.seed, which fixes
	// the split, is separate so seeds of a sweep share one split).
	Seed uint64 `mapstructure:"seed"`

	Data      data.Config     `mapstructure:"data"`
	Model     models.Config   `mapstructure:"model"`
	Process   forward.Config  `mapstructure:"process"`
	Objective losses.Config   `mapstructure:"objective"`
	Train     train.Config    `mapstructure:"train"`
	Eval      eval.Config     `mapstructure:"eval"`
	Sampling  sampling.Config `mapstructure:"sampling"`
	Sweep     SweepConfig     `mapstructure:"sweep"`
	Report    ReportConfig    `mapstructure:"report"`
}

// ReportConfig is the `report:` section: how -mode report compares variants.
type ReportConfig struct {
	// Reference is the variant every other is compared with, paired on the
	// same sequences and eval draws (its difference and that difference's
	// standard error); "" leaves the comparison out.
	Reference string `mapstructure:"reference"`
}

// DefaultConfig is the built-in default experiment: MDLM (absorbing ×
// ELBO) on tiny-shakespeare with the small CPU model, a few minutes on 2
// cores. The configs in configs/ override only what makes them differ.
func DefaultConfig() *Config {
	c := &Config{
		Name:      "default",
		OutDir:    "runs",
		DB:        "results.db",
		Device:    "auto",
		Seed:      1,
		Data:      data.DefaultConfig(),
		Model:     models.DefaultConfig(),
		Process:   forward.DefaultConfig(),
		Objective: losses.DefaultConfig(),
		Train:     train.DefaultConfig(),
		Eval:      eval.DefaultConfig(),
		Sampling:  sampling.DefaultConfig(),
	}
	c.Data.Train = []string{"tinyshakespeare/input.txt"}
	c.Data.DocSplit = "paragraph"
	c.Data.VocabSize = 4096
	c.Model.Preset = "small-cpu"
	c.Train.Steps, c.Train.Warmup, c.Train.LR, c.Train.Schedule = 1500, 100, 1e-3, "cosine"
	c.Train.CkptEvery, c.Train.EvalEvery = 250, 250
	c.Eval.TDraws, c.Eval.MaxBatches = 4, 20
	c.Eval.Lambada, c.Eval.LambadaLimit = "lambada/lambada_test.jsonl", 500
	c.Eval.GenSteps, c.Eval.GenSamples = []int{16, 64, 128}, 8
	return c
}

// Validate checks each section, then what only the whole can check: that
// the process and objective make a defined pair.
func (c *Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if !slices.Contains([]string{"auto", "cpu", "cuda"}, c.Device) && !validCudaIndex(c.Device) {
		errs = append(errs, fmt.Errorf("device: %q is not one of auto|cpu|cuda|cuda:N", c.Device))
	}
	if c.Threads < 0 {
		errs = append(errs, fmt.Errorf("threads: %d is negative", c.Threads))
	}
	c.syncRunKeys()
	for _, v := range []config.Validator{c.Data, c.Process, c.Objective, c.Train, c.Eval, c.Sampling, c.Sweep} {
		if err := v.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := c.Model.Resolve(); err != nil {
		errs = append(errs, err)
	}
	if err := losses.ValidatePair(c.Process.Name, c.Objective.Name); err != nil {
		errs = append(errs, err)
	}
	if c.Eval.ARReference == selfReference && c.Objective.Name != "ar" {
		errs = append(errs, fmt.Errorf("eval.ar_reference: %q needs objective.name: ar, got %s", selfReference, c.Objective.Name))
	}
	return errors.Join(errs...)
}

// syncRunKeys copies the run-wide keys into the sections that act on them,
// so there is one place in YAML to set each.
func (c *Config) syncRunKeys() {
	c.Train.Device = c.Device
	c.Train.Threads = c.Threads
	c.Train.Seed = c.Seed
}

func validCudaIndex(s string) bool {
	var n int
	_, err := fmt.Sscanf(s, "cuda:%d", &n)
	return err == nil && n >= 0 && fmt.Sprintf("cuda:%d", n) == s
}
