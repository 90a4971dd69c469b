package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/dist"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/torchx"
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
	// Threads is libtorch's intra-op thread count: auto (the default) is
	// the CPUs this process may use (torchx.UsableCPUs), divided among the
	// runs a sweep starts at once.
	Threads config.AutoInt `mapstructure:"threads"`
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
	Frontier  FrontierConfig  `mapstructure:"frontier"`
	Dist      dist.Config     `mapstructure:"dist"`
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
		Threads:   config.Auto,
		Seed:      1,
		Data:      data.DefaultConfig(),
		Model:     models.DefaultConfig(),
		Process:   forward.DefaultConfig(),
		Objective: losses.DefaultConfig(),
		Train:     train.DefaultConfig(),
		Eval:      eval.DefaultConfig(),
		Sampling:  sampling.DefaultConfig(),
		Frontier:  DefaultFrontierConfig(),
		Dist:      dist.DefaultConfig(),
	}
	// The built-in default is the first ten minutes of a new user: a few
	// minutes on 2 cores that end with a model clearly better than the
	// unigram baseline and text crystallising from masks. Character level
	// (text8's 27 symbols) because there a 0.8M-parameter model leaves the
	// unigram plateau within a few hundred steps; with BPE it would not
	// (docs/study-cpu.md). The longer BPE run that was the default is
	// configs/shakespeare-bpe.yaml.
	c.Data.Train = []string{"tinyshakespeare/input.txt"}
	c.Data.DocSplit = "paragraph"
	c.Data.Tokenizer, c.Data.Normalize, c.Data.VocabSize = data.TokChar, "text8", 0
	c.Data.SeqLen = 128
	c.Model.Preset, c.Model.Dropout = "tiny", 0
	c.Train.Steps, c.Train.BatchSize, c.Train.Warmup, c.Train.LR, c.Train.Schedule = 600, 32, 30, 2e-3, "cosine"
	// Horizon ~50 steps: the package default 0.995 would still hold
	// 0.995^600 = 5% of the random initial weights at the end.
	c.Train.EMA = 0.98
	c.Train.CkptEvery, c.Train.EvalEvery = 100, 100
	c.Eval.TDraws, c.Eval.MaxBatches = 2, 8
	c.Eval.Lambada = "" // LAMBADA's last word is far beyond a few minutes of character-level training
	c.Eval.GenSteps, c.Eval.GenSamples = []int{32, 128}, 8
	c.Sampling.Steps = 128
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
	if _, _, err := c.Threads.Value(); err != nil {
		errs = append(errs, fmt.Errorf("threads: %w", err))
	}
	c.syncRunKeys()
	for _, v := range []config.Validator{c.Data, c.Process, c.Objective, c.Train, c.Eval, c.Sampling, c.Sweep, c.Frontier, c.Dist} {
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
	if c.Objective.Name == "bd3lm" && c.Objective.BlockSize > 0 && c.Data.SeqLen%c.Objective.BlockSize != 0 {
		errs = append(errs, fmt.Errorf("objective.block_size: %d does not divide data.seq_len %d (bd3lm cuts sequences into whole blocks)", c.Objective.BlockSize, c.Data.SeqLen))
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
	c.Train.Threads = c.threadCount(1)
	c.Train.Seed = c.Seed
}

// threadCount resolves threads for one of parallel runs going at once.
func (c *Config) threadCount(parallel int) int {
	n, auto, err := c.Threads.Value()
	if err != nil || auto {
		return max(1, torchx.UsableCPUs()/max(1, parallel))
	}
	return n
}

func validCudaIndex(s string) bool {
	var n int
	_, err := fmt.Sscanf(s, "cuda:%d", &n)
	return err == nil && n >= 0 && fmt.Sprintf("cuda:%d", n) == s
}
