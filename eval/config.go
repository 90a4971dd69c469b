// Package eval turns trained models into the numbers of the comparison:
// perplexity bounds on held-out and zero-shot corpora (with their Monte
// Carlo standard errors), LAMBADA last-word accuracy, and the generative
// perplexity, unigram entropy and repetition of samples under an
// autoregressive reference model.
//
// Every function that touches torch locks its goroutine to its OS thread
// (torchx.Lock) and runs without gradients; call them from the goroutine
// that does the run's torch work. Tensors live on Model.Device.
package eval

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/sampling"
)

// Config is the `eval:` section of a run configuration.
type Config struct {
	// TDraws is K, the number of time draws per sequence of the perplexity
	// bound (K ≥ 2 to estimate its Monte Carlo error). With ExactSteps it
	// is the number of full sweeps over all T steps.
	TDraws int `mapstructure:"t_draws"`
	// TImportance draws times t = v² with importance weights, which gives
	// the bound's estimator a finite variance (see Bound); false draws t
	// uniformly, as MDLM does.
	TImportance bool `mapstructure:"t_importance"`
	// BatchSize is the number of sequences per network call.
	BatchSize int `mapstructure:"batch_size"`
	// ExactSteps sums discrete-time bounds (d3pm, mdlm with steps > 0)
	// over all T steps instead of drawing steps at random; ignored for
	// continuous-time objectives and for ar, which is always exact.
	ExactSteps bool `mapstructure:"exact_steps"`
	// MaxBatches caps the batches of each bound evaluation; 0 = all.
	MaxBatches int `mapstructure:"max_batches"`
	// Seed drives the time draws (Go) and the noise draws (torch).
	Seed int64 `mapstructure:"seed"`
	// Seeding is how a bound's pass draws its noise: "stream" (the
	// default, and the protocol of the studies so far) seeds once and
	// draws every batch from one stream, so a batch's draws depend on the
	// batches before it; "per-batch" seeds batch i from (seed, i), so the
	// pass can be split over the ranks of a data-parallel job and give the
	// same numbers to the last bit. Both are the same estimator; only runs
	// evaluated the same way share draws (paired comparisons pair them).
	Seeding string `mapstructure:"seeding"`
	// LogEvery is how many batches pass between progress lines.
	LogEvery int `mapstructure:"log_every"`
	// Lambada is the LAMBADA JSON-lines file, relative to the data folder
	// (data.dir or $DATA_DIR); "" turns the LAMBADA evaluations off.
	Lambada string `mapstructure:"lambada"`
	// LambadaLimit evaluates only the first N passages; 0 = all 5153.
	LambadaLimit int `mapstructure:"lambada_limit"`
	// LambadaEOS appends EOS after the target word for the accuracy
	// (bidirectional models then see where the passage ends, which causal
	// ones never do); false, the default, scores every model on the context
	// alone, as lm-eval does.
	LambadaEOS bool `mapstructure:"lambada_eos"`
	// ZeroShot lists further held-out corpora to bound zero-shot.
	ZeroShot []ZeroShot `mapstructure:"zero_shot"`
	// GenSteps are the sampling step counts of the generation sweep.
	GenSteps []int `mapstructure:"gen_steps"`
	// GenSamples is the number of samples per step count.
	GenSamples int `mapstructure:"gen_samples"`
	// GenSampler names the sampler of the sweep; "" takes sampling.sampler.
	GenSampler string `mapstructure:"gen_sampler"`
	// ARReference is the checkpoint of the causal model that scores
	// samples (generative perplexity); "" skips that score. "self" (for
	// objective ar only) scores a run's samples with its own model, which
	// gives exp of the model's entropy rate: what exact samples score.
	ARReference string `mapstructure:"ar_reference"`
}

// The values of eval.seeding.
const (
	SeedStream   = "stream"
	SeedPerBatch = "per-batch"
)

// ZeroShot is one held-out corpus read with the data package's sources
// (paths relative to the data folder) and packed as the run's data.
type ZeroShot struct {
	// Name is the task name in the results (e.g. results.TaskWikiText2).
	Name string `mapstructure:"name"`
	// Paths are files, folders or globs, as data.train takes them.
	Paths []string `mapstructure:"paths"`
	// Detokenizer is none|wikitext|ptb|lambada, as data.detokenizer;
	// "" means none.
	Detokenizer string `mapstructure:"detokenizer"`
}

// DefaultConfig evaluates with 4 time draws per sequence, LAMBADA and
// WikiText-2 (test, MDLM's detokenizer) zero-shot, and a generation sweep
// over MDLM's step counts.
func DefaultConfig() Config {
	return Config{
		TDraws:      4,
		TImportance: true,
		BatchSize:   16,
		Seed:        1,
		Seeding:     SeedStream,
		LogEvery:    20,
		Lambada:     "lambada/lambada_test.jsonl",
		ZeroShot:    []ZeroShot{{Name: results.TaskWikiText2, Paths: []string{"wikitext-2/test.txt"}, Detokenizer: "wikitext"}},
		GenSteps:    []int{8, 16, 32, 64, 128, 256},
		GenSamples:  64,
	}
}

// Validate checks every key and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("eval.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	atLeast := func(key string, v, least int) {
		if v < least {
			bad(key, "%d, want at least %d", v, least)
		}
	}
	atLeast("t_draws", c.TDraws, 1)
	atLeast("batch_size", c.BatchSize, 1)
	atLeast("max_batches", c.MaxBatches, 0)
	atLeast("log_every", c.LogEvery, 1)
	atLeast("lambada_limit", c.LambadaLimit, 0)
	atLeast("gen_samples", c.GenSamples, 1)
	if c.Seeding != SeedStream && c.Seeding != SeedPerBatch {
		bad("seeding", "%q is not one of %s|%s", c.Seeding, SeedStream, SeedPerBatch)
	}
	detoks := []string{"", "none", "wikitext", "ptb", "lambada"}
	names := map[string]bool{}
	for i, z := range c.ZeroShot {
		key := fmt.Sprintf("zero_shot[%d]", i)
		switch {
		case z.Name == "" || strings.ContainsAny(z.Name, "/ "):
			bad(key+".name", "%q must be non-empty without '/' or spaces", z.Name)
		case names[z.Name]:
			bad(key+".name", "%q appears twice", z.Name)
		}
		names[z.Name] = true
		if len(z.Paths) == 0 {
			bad(key+".paths", "no sources given")
		}
		if !slices.Contains(detoks, z.Detokenizer) {
			bad(key+".detokenizer", "%q is not one of %s", z.Detokenizer, strings.Join(detoks[1:], "|"))
		}
	}
	for i, s := range c.GenSteps {
		if s < 1 {
			bad(fmt.Sprintf("gen_steps[%d]", i), "%d, want a positive step count", s)
		}
	}
	if c.GenSampler != "" && !slices.Contains(sampling.Names(), c.GenSampler) {
		bad("gen_sampler", "%q is not one of %s (or empty for sampling.sampler)", c.GenSampler, strings.Join(sampling.Names(), "|"))
	}
	return errors.Join(errs...)
}
