// Command experiments trains, evaluates, samples and records discrete
// diffusion language models (and the autoregressive baseline) from one YAML
// config, and compares the recorded runs.
//
//	go run ./experiments -cfg absorbing.yaml              # run: train + eval + sample + record
//	go run ./experiments -cfg study-cpu                   # a config with sweep: runs every variant
//	go run ./experiments -cfg absorbing -mode eval        # evaluate (bounds + generation) the newest checkpoint
//	go run ./experiments -cfg study-text8 -mode eval      # evaluate every finished run of a sweep again
//	go run ./experiments -cfg absorbing -mode sample -n 8 -steps 128 -infill "She [MASK:4] the door."
//	go run ./experiments -mode report | plot [-sweep NAME] [-doc docs/study-cpu.md]
//	go run ./experiments -cfg study-text8 -mode frontier  # speed against quality of the finished runs' samplers
//
// Exit status: 0 on success, 1 on a failed run, 2 on bad usage or config,
// 130 when interrupted (SIGINT or SIGTERM: training checkpoints the current
// step first, the run is marked interrupted and resumes when started again).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/dlmlab/difflm/config"
)

func init() {
	// All torch work runs on the main goroutine, pinned to one OS thread
	// (see torchx.Lock): main's goroutine is locked from init on.
	runtime.LockOSThread()
}

// setFlags collects repeated -set key=value overrides.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, " ") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

// options are the command-line flags beyond the config.
type options struct {
	cfg, mode, ckpt, sampler, infill, sweep, db, out, doc, runName, variant, launcher, only string
	n, steps, length, parallel, nproc, sweepTask                                            int
	sets                                                                                    setFlags
}

var modes = []string{"run", "train", "eval", "sample", "sweep", "plot", "report", "bench", "frontier", "merge"}

func main() {
	ensureOMPPolicy()
	var o options
	flag.StringVar(&o.cfg, "cfg", "", "config: a path, or a bare name found in configs/ (default: the built-in default)")
	flag.StringVar(&o.mode, "mode", "run", "one of "+strings.Join(modes, ", "))
	flag.Var(&o.sets, "set", "override a config key: -set train.steps=100 (repeatable)")
	flag.StringVar(&o.ckpt, "ckpt", "", "checkpoint for eval/sample (default: the run's newest)")
	flag.IntVar(&o.n, "n", 0, "sample: number of sequences (default sampling.samples)")
	flag.IntVar(&o.steps, "steps", 0, "sample: reverse steps T (default sampling.steps)")
	flag.IntVar(&o.length, "len", 0, "sample: sequence length (default data.seq_len)")
	flag.StringVar(&o.sampler, "sampler", "", "sample: sampler name (default sampling.sampler)")
	flag.StringVar(&o.infill, "infill", "", `sample: text with masked spans, e.g. "She [MASK:4] the door."`)
	flag.IntVar(&o.parallel, "parallel", 0, "sweep: runs at once (default sweep.parallel, else 1)")
	flag.StringVar(&o.launcher, "launcher", "", "sweep: slurm writes sbatch array scripts instead of starting the runs")
	flag.IntVar(&o.sweepTask, "sweep-task", -1, "run only run I of the sweep's plan, into its own database (a Slurm array task)")
	flag.IntVar(&o.nproc, "nproc", 0, "run/train: start N local ranks of a data-parallel job (like torchrun --standalone)")
	flag.StringVar(&o.sweep, "sweep", "", "report/plot: only runs of this sweep")
	flag.StringVar(&o.only, "only", "", "sweep run/eval: only these variants' runs or these runs (comma-separated names), e.g. after a protocol change that touches them alone")
	flag.StringVar(&o.db, "db", "", "results database (default: the config's)")
	flag.StringVar(&o.doc, "doc", "", "report: also rewrite the generated block of this Markdown file")
	flag.StringVar(&o.out, "out", "", "report/plot: output folder (default out_dir/report)")
	flag.StringVar(&o.runName, "run-name", "", "internal: run name chosen by a sweep")
	flag.StringVar(&o.variant, "variant", "", "internal: variant label chosen by a sweep")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "experiments:", err)
		var u usageError
		switch {
		case errors.As(err, &u):
			os.Exit(2)
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// usageError marks errors in flags or config (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func run(ctx context.Context, o options) error {
	known := false
	for _, m := range modes {
		known = known || m == o.mode
	}
	if !known {
		return usageError{fmt.Errorf("-mode %q: want one of %s", o.mode, strings.Join(modes, ", "))}
	}
	cfg, loaded, err := loadConfig(o.cfg, o.sets)
	if err != nil {
		return usageError{err}
	}
	if o.runName != "" {
		cfg.Name = o.runName
	}
	if o.sweepTask >= 0 {
		return sweepTask(ctx, cfg, o)
	}
	if o.launcher != "" {
		if o.launcher != "slurm" {
			return usageError{fmt.Errorf("-launcher %q: want slurm", o.launcher)}
		}
		if o.mode != "sweep" && o.mode != "run" {
			return usageError{fmt.Errorf("-launcher slurm: goes with -mode sweep, not %s", o.mode)}
		}
		return writeSlurm(cfg, loaded, o)
	}
	if o.nproc > 1 && os.Getenv("WORLD_SIZE") == "" {
		if (o.mode != "run" && o.mode != "train" && o.mode != "eval") || (cfg.Sweep.Enabled() && o.runName == "") {
			return usageError{fmt.Errorf("-nproc: data-parallel ranks train and evaluate one run (-mode run, train or eval, not a sweep); got -mode %s", o.mode)}
		}
		return launchLocal(ctx, o.nproc, 10*time.Second)
	}
	if o.db != "" {
		cfg.DB = o.db
	}
	switch o.mode {
	case "report":
		return report(cfg, o)
	case "plot":
		return plots(cfg, o)
	case "bench":
		return bench(ctx, cfg, loaded, o)
	case "frontier":
		return frontier(ctx, cfg, loaded, o)
	case "merge":
		return merge(cfg)
	case "sweep":
		return sweep(ctx, cfg, loaded, o, "run")
	case "run", "eval":
		if cfg.Sweep.Enabled() && o.runName == "" {
			return sweep(ctx, cfg, loaded, o, o.mode)
		}
	}
	if r := os.Getenv("RANK"); r == "" || r == "0" { // one copy per job
		fmt.Fprintf(os.Stderr, "# config %s (hash %s)\n%s\n", sourceName(loaded), loaded.Hash, loaded.YAML)
	}
	switch o.mode {
	case "train":
		return experiment(ctx, cfg, loaded, o, stageTrain)
	case "eval":
		return experiment(ctx, cfg, loaded, o, stageEval|stageSample)
	case "sample":
		return sampleMode(ctx, cfg, o)
	}
	return experiment(ctx, cfg, loaded, o, stageTrain|stageEval|stageSample)
}

// loadConfig resolves -cfg (a path or a bare name in configs/) and loads it
// over the built-in defaults with the -set overrides.
func loadConfig(name string, sets []string) (*Config, config.Loaded, error) {
	cfg := DefaultConfig()
	path := ""
	if name != "" {
		p, err := config.Resolve(name, []string{"configs"})
		if err != nil {
			return nil, config.Loaded{}, err
		}
		path = p
	}
	loaded, err := config.Load(path, sets, cfg)
	if err != nil {
		return nil, config.Loaded{}, err
	}
	return cfg, loaded, nil
}

func sourceName(l config.Loaded) string {
	if l.Path == "" {
		return "(built-in default)"
	}
	return l.Path
}
