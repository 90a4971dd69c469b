package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// pyOutput is what torch_train.py prints.
type pyOutput struct {
	Params  int64              `json:"params"`
	Shapes  map[string][]int64 `json:"shapes"`
	Threads int                `json:"threads"`
	StepS   []float64          `json:"step_s"`
	CPUS    []float64          `json:"cpu_s"`
	Loss    []float64          `json:"loss"`
	PeakRSS int64              `json:"peak_rss_kib"` // VmHWM (see peak_rss_kib in the script)
}

// pyArgs are the script's arguments for c under s: every architecture and
// training value explicitly, so that the script's defaults never matter.
func pyArgs(script string, s Setup, c Case) ([]string, error) {
	m, err := s.modelConfig(c).Resolve()
	if err != nil {
		return nil, err
	}
	t := s.trainConfig(c)
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	i := strconv.Itoa
	return []string{script,
		"--layers", i(m.Layers), "--width", i(m.Width), "--heads", i(m.Heads),
		"--mlp-ratio", f(m.MLPRatio), "--dropout", f(m.Dropout), "--vocab", i(c.Vocab),
		"--objective", s.Objective.Name, "--mask-eps", f(s.Process.Eps), "--t-sampling", s.Objective.TSampling,
		"--seq-len", i(c.L), "--batch", i(c.B), "--steps", i(c.Steps), "--threads", i(s.Threads),
		"--seed", strconv.FormatUint(t.Seed, 10), "--lr", f(t.LR), "--beta1", f(t.Beta1), "--beta2", f(t.Beta2),
		"--adam-eps", f(t.Eps), "--weight-decay", f(t.WeightDecay), "--clip", f(t.ClipNorm), "--ema", f(t.EMA),
		"--weights", c.Weights, "--batches", c.Batches,
	}, nil
}

// pyRun runs torch_train.py on c and checks that it built the network the
// Go side built (names, shapes) with the asked number of threads.
func pyRun(ctx context.Context, cfg Config, s Setup, c Case, goShapes map[string][]int64) (Result, error) {
	args, err := pyArgs(cfg.Script, s, c)
	if err != nil {
		return Result{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, cfg.Python, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("%s %s: %w\n%s", cfg.Python, cfg.Script, err, tail(stderr.String(), 2000))
	}
	var out pyOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return Result{}, fmt.Errorf("%s: output is not the expected JSON: %w\n%s", cfg.Script, err, tail(stdout.String(), 500))
	}
	if out.Threads != s.Threads {
		return Result{}, fmt.Errorf("%s ran with %d threads, asked for %d", cfg.Script, out.Threads, s.Threads)
	}
	if err := sameShapes(goShapes, out.Shapes); err != nil {
		return Result{}, fmt.Errorf("%s builds another network than models.Transformer: %w", cfg.Script, err)
	}
	return Result{StepS: out.StepS, CPUS: out.CPUS, Loss: out.Loss, Params: out.Params, Shapes: out.Shapes, PeakRSS: out.PeakRSS << 10}, nil
}

// torchVersion is the version of torch that python imports; the error
// says how to install it.
func torchVersion(ctx context.Context, python string) (string, error) {
	out, err := exec.CommandContext(ctx, python, "-c", "import torch; print(torch.__version__)").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench.python: %s cannot import torch (install Debian's python3-torch: make bench): %w\n%s", python, err, tail(string(out), 500))
	}
	return strings.TrimSpace(string(out)), nil
}

// sameShapes compares two parameter lists, name by name.
func sameShapes(goShapes, pyShapes map[string][]int64) error {
	for name, g := range goShapes {
		p, ok := pyShapes[name]
		if !ok {
			return fmt.Errorf("no parameter %s %v", name, g)
		}
		if !slices.Equal(p, g) {
			return fmt.Errorf("parameter %s is %v, the Go model's %v", name, p, g)
		}
	}
	for name, p := range pyShapes {
		if _, ok := goShapes[name]; !ok {
			return fmt.Errorf("extra parameter %s %v", name, p)
		}
	}
	return nil
}

// tail is the last n bytes of s, for error messages.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
