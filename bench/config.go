// Package bench measures training speed: the project's Go training step
// (models.Transformer, a losses objective, the train trainer, in process)
// against the same step in PyTorch eager (torch_train.py, run by Debian's
// python3-torch on the same libtorch), for a grid of model presets and
// sequence lengths, and prints tokens/s for both and their ratio.
//
// Both sides start from the same weights (the Go model exported to
// safetensors), train on the same batches with the same per-step seeds and
// the same number of threads, one side at a time, so that besides the
// speed the table shows that they computed the same losses.
package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dlmlab/difflm/models"
)

// Config is the `bench:` section: the grid of rows and how each is timed.
type Config struct {
	// Presets are the model presets (rows), see models.PresetNames.
	Presets []string `mapstructure:"presets"`
	// SeqLens are the sequence lengths L (rows within a preset).
	SeqLens []int `mapstructure:"seq_lens"`
	// Tokens is B·L per optimizer step; each row's batch is B = Tokens/L,
	// the same on both sides.
	Tokens int `mapstructure:"tokens"`
	// Warmup steps of every run are not timed (first-touch allocations,
	// thread pools, allocator caches).
	Warmup int `mapstructure:"warmup"`
	// Steps are timed after the warmup; a run reports their median.
	Steps int `mapstructure:"steps"`
	// Repeats is the number of runs per side and row, alternating Go and
	// PyTorch; the table keeps each side's fastest run, which filters out
	// the moments another process took the cores.
	Repeats int `mapstructure:"repeats"`
	// Python is the interpreter that has torch (Debian's python3-torch:
	// /usr/bin/python3, not a pyenv python3 on PATH).
	Python string `mapstructure:"python"`
	// Script is torch_train.py, relative to the working directory.
	Script string `mapstructure:"script"`
	// Rows are measured after the grid, each with its own vocabulary
	// (the grid's is the experiment's) and, on the Go side, the chunked
	// cross-entropy (objective.ce_chunk) or the whole head (0).
	Rows []RowSpec `mapstructure:"rows"`
}

// RowSpec is one row outside the presets × seq_lens grid.
type RowSpec struct {
	Preset  string `mapstructure:"preset"`
	L       int    `mapstructure:"seq_len"`
	Vocab   int    `mapstructure:"vocab"`    // real tokens V
	CEChunk int    `mapstructure:"ce_chunk"` // Go side's objective.ce_chunk
}

// DefaultConfig is the table of issue 4: tiny and small-cpu at L = 64 and
// 128, 1024 tokens a step (B = 16 and 8), which takes a few tenths of a
// second per step on two cores; 3 warmup and 10 timed steps, best of 5 runs
// per side. Five, not three: on the 2-vCPU machine a process's step time
// settles in one of two modes for its whole life (tiny, L = 128: 110 or
// 135 ms, on both sides, whatever the code), and the fastest of three
// runs missed a side's fast mode often enough to move a ratio by 20%. Then the rows of issue 15: the character
// level (V = 28: 27 symbols and EOS, L = 256, as the text8 study) and
// GPT-2's vocabulary (V = 50257, L = 128), the latter with the whole head
// and with the chunked cross-entropy in chunks of 128 rows, whose peak
// memory the table's RSS columns compare (a few minutes more).
func DefaultConfig() Config {
	return Config{
		Presets: []string{"tiny", "small-cpu"},
		SeqLens: []int{64, 128},
		Tokens:  1024,
		Warmup:  3,
		Steps:   10,
		Repeats: 5,
		Python:  "/usr/bin/python3",
		Script:  "bench/torch_train.py",
		Rows: []RowSpec{
			{Preset: "small-cpu", L: 256, Vocab: 28},
			{Preset: "small-cpu", L: 128, Vocab: 50257},
			{Preset: "small-cpu", L: 128, Vocab: 50257, CEChunk: 128},
		},
	}
}

// Validate checks every key and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("bench.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Presets) == 0 {
		bad("presets", "empty, want at least one of %s", strings.Join(models.PresetNames(), "|"))
	}
	for _, p := range c.Presets {
		if !slices.Contains(models.PresetNames(), p) {
			bad("presets", "%q is not one of %s", p, strings.Join(models.PresetNames(), "|"))
		}
	}
	if c.Tokens <= 0 {
		bad("tokens", "%d must be positive", c.Tokens)
	}
	if len(c.SeqLens) == 0 {
		bad("seq_lens", "empty, want at least one sequence length")
	}
	for _, l := range c.SeqLens {
		switch {
		case l < 2:
			bad("seq_lens", "%d is too short (at least 2)", l)
		case c.Tokens > 0 && c.Tokens%l != 0:
			bad("seq_lens", "%d does not divide bench.tokens %d", l, c.Tokens)
		}
	}
	for i, r := range c.Rows {
		key := fmt.Sprintf("rows[%d]", i)
		switch {
		case !slices.Contains(models.PresetNames(), r.Preset):
			bad(key, "preset %q is not one of %s", r.Preset, strings.Join(models.PresetNames(), "|"))
		case r.L < 2 || (c.Tokens > 0 && c.Tokens%r.L != 0):
			bad(key, "seq_len %d must be at least 2 and divide bench.tokens %d", r.L, c.Tokens)
		case r.Vocab < 2:
			bad(key, "vocab %d, want at least 2 tokens", r.Vocab)
		case r.CEChunk < 0:
			bad(key, "ce_chunk %d is negative", r.CEChunk)
		}
	}
	if c.Warmup < 0 {
		bad("warmup", "%d must not be negative", c.Warmup)
	}
	if c.Steps < 1 {
		bad("steps", "%d must be at least 1", c.Steps)
	}
	if c.Repeats < 1 {
		bad("repeats", "%d must be at least 1", c.Repeats)
	}
	if c.Python == "" {
		bad("python", "must name the interpreter with torch (/usr/bin/python3 on Debian)")
	}
	if c.Script == "" {
		bad("script", "must name torch_train.py")
	}
	return errors.Join(errs...)
}
