package train

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Config is the `train:` section of a run configuration.
type Config struct {
	// Steps is the number of optimizer steps of the whole run.
	Steps int `mapstructure:"steps"`
	// BatchSize is the number of sequences per optimizer step; every batch
	// the Batcher yields must have exactly this many rows.
	BatchSize int `mapstructure:"batch_size"`
	// MicroBatch is the number of rows per forward/backward pass; 0 means
	// BatchSize. Smaller values accumulate gradients over BatchSize/MicroBatch
	// passes (the last one smaller when it does not divide), each loss scaled
	// by its share of the rows, so the step equals one full-batch step.
	MicroBatch int `mapstructure:"micro_batch"`
	// LR is the peak learning rate, reached after Warmup steps.
	LR float64 `mapstructure:"lr"`
	// Warmup is the number of steps of linear warmup from 0 to LR.
	Warmup int `mapstructure:"warmup"`
	// Schedule after warmup: constant (MDLM) or cosine decay to
	// MinLRRatio·LR at the last step.
	Schedule string `mapstructure:"schedule"`
	// MinLRRatio is the final fraction of LR under the cosine schedule.
	MinLRRatio float64 `mapstructure:"min_lr_ratio"`
	// Beta1, Beta2, Eps and WeightDecay are AdamW's (torch.optim.AdamW
	// semantics; weight decay applies to every trainable parameter).
	Beta1       float64 `mapstructure:"beta1"`
	Beta2       float64 `mapstructure:"beta2"`
	Eps         float64 `mapstructure:"eps"`
	WeightDecay float64 `mapstructure:"weight_decay"`
	// ClipNorm clips the global L2 norm of the gradients; 0 turns it off.
	ClipNorm float64 `mapstructure:"clip_norm"`
	// EMA is the decay of the exponential moving average of the weights
	// used for evaluation and sampling; 0 turns it off.
	EMA float64 `mapstructure:"ema"`
	// CkptEvery saves a checkpoint every that many steps (0: only at the
	// end and on interruption); KeepLast keeps that many (0: all).
	CkptEvery int `mapstructure:"ckpt_every"`
	KeepLast  int `mapstructure:"keep_last"`
	// Resume is auto (continue from the newest valid checkpoint of the run
	// folder, else start fresh), never (start fresh; a run folder that
	// already holds checkpoints is an error) or the path of a checkpoint.
	Resume string `mapstructure:"resume"`
	// LogEvery hands training metrics to the sink every that many steps;
	// EvalEvery calls the evaluation hook every that many steps and after
	// the last one (0: never).
	LogEvery  int `mapstructure:"log_every"`
	EvalEvery int `mapstructure:"eval_every"`
	// Seed, with the step number, seeds libtorch's generator at the start
	// of every step, so a resumed run draws the same noise. Seed, Threads
	// and Device are run-wide keys (top-level `seed`, `threads`, `device`
	// in YAML), copied here by the command.
	Seed uint64 `mapstructure:"-"`
	// Precision is auto (fp32 on CPU, bf16 autocast on CUDA), fp32 or bf16
	// (CUDA only). fp16 is refused: it needs dynamic loss scaling, which
	// this trainer does not implement, and bf16 does the same job on every
	// GPU recent enough to matter.
	Precision string `mapstructure:"precision"`
	// Threads sets libtorch's intra-op threads; 0 keeps its default.
	Threads int `mapstructure:"-"`
	// Device is auto, cpu, cuda or cuda:N; the model's VarStore must live
	// there.
	Device string `mapstructure:"-"`
}

// DefaultConfig returns CPU-sized defaults in the spirit of MDLM's recipe
// (AdamW β=(0.9, 0.999), ε=1e-8, no weight decay, lr 3e-4, constant
// schedule after linear warmup, clipping at 1). MDLM warms up for 2,500 of
// 1M steps and keeps an EMA of 0.9999; a CPU run of 2,000 steps gets 200
// warmup steps and an EMA of 0.995, whose horizon of ~200 steps is the same
// tenth of the run, so the average forgets the initial weights
// (0.995^2000 ≈ 5e-5; 0.9999 would still be 82% initialisation).
func DefaultConfig() Config {
	return Config{
		Steps:      2000,
		BatchSize:  32,
		LR:         3e-4,
		Warmup:     200,
		Schedule:   "constant",
		MinLRRatio: 0.1,
		Beta1:      0.9,
		Beta2:      0.999,
		Eps:        1e-8,
		ClipNorm:   1,
		EMA:        0.995,
		CkptEvery:  500,
		KeepLast:   3,
		Resume:     "auto",
		LogEvery:   10,
		EvalEvery:  500,
		Seed:       1,
		Precision:  "auto",
		Device:     "auto",
	}
}

var (
	schedules  = []string{"constant", "cosine"}
	precisions = []string{"auto", "fp32", "bf16"}
)

// Validate checks every key and reports all problems at once; each message
// names its key as train.KEY.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("train.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	positive := func(key string, v int) {
		if v <= 0 {
			bad(key, "%d must be positive", v)
		}
	}
	nonNegative := func(key string, v int) {
		if v < 0 {
			bad(key, "%d must not be negative", v)
		}
	}
	unit := func(key string, v float64) { // [0, 1)
		if !(v >= 0 && v < 1) {
			bad(key, "%v is outside [0, 1)", v)
		}
	}
	positive("steps", c.Steps)
	positive("batch_size", c.BatchSize)
	if c.MicroBatch < 0 || c.MicroBatch > c.BatchSize {
		bad("micro_batch", "%d is outside 0..train.batch_size (%d)", c.MicroBatch, c.BatchSize)
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		bad("lr", "%v must be positive", c.LR)
	}
	nonNegative("warmup", c.Warmup)
	if c.Warmup > c.Steps {
		bad("warmup", "%d exceeds train.steps (%d)", c.Warmup, c.Steps)
	}
	if !slices.Contains(schedules, c.Schedule) {
		bad("schedule", "%q is not one of %s", c.Schedule, strings.Join(schedules, "|"))
	}
	if !(c.MinLRRatio >= 0 && c.MinLRRatio <= 1) {
		bad("min_lr_ratio", "%v is outside [0, 1]", c.MinLRRatio)
	}
	unit("beta1", c.Beta1)
	unit("beta2", c.Beta2)
	unit("ema", c.EMA)
	if !(c.Eps > 0) {
		bad("eps", "%v must be positive", c.Eps)
	}
	if !(c.WeightDecay >= 0) {
		bad("weight_decay", "%v must not be negative", c.WeightDecay)
	}
	if !(c.ClipNorm >= 0) {
		bad("clip_norm", "%v must not be negative", c.ClipNorm)
	}
	nonNegative("ckpt_every", c.CkptEvery)
	nonNegative("keep_last", c.KeepLast)
	if c.Resume == "" {
		bad("resume", "must be auto, never or a checkpoint path")
	}
	positive("log_every", c.LogEvery)
	nonNegative("eval_every", c.EvalEvery)
	switch {
	case c.Precision == "fp16":
		bad("precision", "fp16 needs dynamic loss scaling, which this trainer does not implement; use bf16 (CUDA) or fp32")
	case !slices.Contains(precisions, c.Precision):
		bad("precision", "%q is not one of %s", c.Precision, strings.Join(precisions, "|"))
	}
	return errors.Join(errs...)
}

// micro returns the micro-batch size.
func (c Config) micro() int {
	if c.MicroBatch == 0 {
		return c.BatchSize
	}
	return c.MicroBatch
}

// initialEMAWeight is the share of the initial weights left in the EMA
// after Steps updates, decay^Steps (the average starts from them).
func (c Config) initialEMAWeight() float64 {
	if c.EMA == 0 {
		return 0
	}
	return math.Pow(c.EMA, float64(c.Steps))
}
