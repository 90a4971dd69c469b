package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/torchx"
	"github.com/dlmlab/difflm/train"
)

type stage int

const (
	stageTrain stage = 1 << iota
	stageEval
	stageSample
)

// runDir is where a run keeps its checkpoints, config and samples.
func runDir(cfg *Config) string { return filepath.Join(cfg.OutDir, filepath.FromSlash(cfg.Name)) }

// dbPath: a bare file name lives in out_dir; anything with a folder is used as given.
func dbPath(cfg *Config) string {
	if strings.ContainsRune(cfg.DB, filepath.Separator) {
		return cfg.DB
	}
	return filepath.Join(cfg.OutDir, cfg.DB)
}

// experiment runs the asked stages of one run and records it. It owns the
// run folder (lockRun) for its whole life. The run's row is created (or
// resumed, when a killed run is started again) once the data and the
// method have loaded, so bad input records nothing, and is marked finished
// or failed at the end, so a sweep can tell what is left to do.
func experiment(ctx context.Context, cfg *Config, loaded config.Loaded, o options, stages stage) (err error) {
	began := time.Now()
	torchx.Lock()
	dir := runDir(cfg)
	j, err := joinJob(cfg)
	if err != nil {
		return err
	}
	defer j.close()
	if j.rank() == 0 { // rank 0 owns the run for the whole job
		// Whatever makes rank 0 return before the run starts (bad input,
		// a finished run), the other ranks hear it and stop too.
		defer func() {
			if _, derr := j.decide(false); derr != nil && err == nil {
				err = derr
			}
		}()
		lock, err := lockRun(dir, cfg.Name)
		if err != nil {
			return err
		}
		defer lock.release()
	}
	dev, err := torchx.ParseDevice(cfg.Device)
	if err != nil {
		return usageError{fmt.Errorf("device: %w", err)}
	}
	torchx.SetThreads(cfg.Train.Threads)
	// Everything that can fail on bad input (data files, the method and its
	// files) comes before the run's row: a run that cannot start is not
	// recorded.
	corpus, err := data.Load(ctx, cfg.Data)
	if err != nil {
		return err
	}
	defer corpus.Close()
	torchx.Seed(int64(cfg.Seed))
	m, err := buildMethod(cfg, corpus.Vocab.Size(), dev)
	if err != nil {
		return err
	}
	if j.rank() != 0 {
		goOn, err := j.decide(false)
		if err != nil || !goOn {
			if err == nil {
				slog.Info("rank 0 did not start the run; this rank stops", "rank", j.rank(), "name", cfg.Name)
			}
			return err
		}
		return followRank(ctx, cfg, m, corpus, j, stages)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(loaded.YAML), 0o644); err != nil {
		return err
	}
	vocabPath := filepath.Join(dir, "vocab.json")
	if err := corpus.Vocab.Save(vocabPath); err != nil {
		return err
	}
	store, err := results.Open(dbPath(cfg))
	if err != nil {
		return err
	}
	defer store.Close()
	variant := o.variant
	if variant == "" {
		variant = cfg.Name
	}
	runID, resumed, err := store.StartRun(results.RunInfo{
		Name: cfg.Name, Sweep: sweepOf(o), Variant: variant, ConfigYAML: loaded.YAML, ConfigHash: loaded.Hash,
		CodeVersion: codeVersion(), Device: torchx.DeviceName(dev), Seed: int64(cfg.Seed),
		Tags: map[string]any{"process": cfg.Process.Name, "objective": cfg.Objective.Name, "model": cfg.Model.Preset},
	})
	// A finished run keeps its status and finish time when it is evaluated
	// again (or trained further): those record the run, not this command.
	finished := false
	if errors.Is(err, results.ErrConfigMismatch) && stages&stageTrain == 0 {
		// Evaluating or sampling with other eval/sampling keys is expected.
		runID, err = finishedRunID(store, cfg.Name)
		finished = true
	}
	if errors.Is(err, results.ErrFinished) {
		if stages == stageTrain|stageEval|stageSample {
			slog.Info("run already finished; nothing to do (choose another name to run it again)", "name", cfg.Name)
			return nil
		}
		// -mode train/eval on a finished run: more steps, or a new evaluation.
		runID, err = finishedRunID(store, cfg.Name)
		finished = true
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", cfg.Name, err)
	}
	slog.Info("run", "name", cfg.Name, "id", runID, "resumed", resumed, "dir", dir, "db", dbPath(cfg))
	if _, err := j.decide(true); err != nil {
		return err
	}
	defer func() {
		if finished {
			return
		}
		if ferr := store.FinishRun(runID, err); ferr != nil && err == nil {
			err = ferr
		}
	}()

	meta := map[string]string{
		checkpoint.MetaConfig:    loaded.YAML,
		checkpoint.MetaVocabHash: corpus.Vocab.Hash(),
		checkpoint.MetaVocabPath: vocabPath,
	}
	tcfg := cfg.Train
	if stages&stageTrain == 0 {
		tcfg.Resume = "auto"
	}
	trainer, err := train.New(tcfg, m.vs, dir, meta)
	if err != nil {
		return err
	}
	if j != nil && stages&stageTrain != 0 {
		if err := trainer.Distribute(j.group); err != nil {
			return err
		}
	}
	if stages&stageTrain != 0 {
		batches, err := corpus.TrainBatches(cfg.Train.BatchSize)
		if err != nil {
			return err
		}
		evalFn := m.quickEval(cfg, corpus)
		if err := trainer.Run(ctx, trainBatches{batches}, m.stepFunc(), store.Sink(runID), evalFn); err != nil {
			return err
		}
		final := filepath.Join(dir, "model.safetensors")
		if err := trainer.WithEMA(func() error { return checkpoint.ExportModel(final, m.vs, meta) }); err != nil {
			return err
		}
		slog.Info("exported weights (EMA when enabled) for PyTorch", "file", final)
	} else if trainer.Step() == 0 {
		return fmt.Errorf("run %s: no checkpoint in %s to evaluate; train first", cfg.Name, dir)
	}
	var gen *genOutcome
	var infill *infillOutcome
	var infillSkipped string
	// The summary is for a person who ran one experiment; a sweep's runs
	// are summed up by its report.
	summary := stages == stageTrain|stageEval|stageSample && o.runName == ""
	err = trainer.WithEMA(func() error {
		if stages&stageEval != 0 {
			if err := m.evaluate(ctx, cfg, corpus, store, runID, j.ranks()); err != nil {
				return err
			}
		}
		if stages&stageSample != 0 {
			if gen, err = m.sampleAndScore(ctx, cfg, corpus, store, runID); err != nil {
				return err
			}
		}
		if summary {
			if infill, infillSkipped, err = m.infillExample(ctx, cfg, corpus); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !summary {
		return err
	}
	if err := store.FinishRun(runID, nil); err != nil {
		return err
	}
	finished = true // recorded: the summary reads the finished run
	return summarize(os.Stdout, store, cfg, runID, corpus.Vocab, began, gen, infill, infillSkipped)
}

func finishedRunID(store *results.Store, name string) (int64, error) {
	runs, err := store.Runs(results.RunFilter{Names: []string{name}})
	if err != nil {
		return 0, err
	}
	if len(runs) != 1 {
		return 0, fmt.Errorf("run %s: %d rows", name, len(runs))
	}
	return runs[0].ID, nil
}

func sweepOf(o options) string {
	if o.runName == "" {
		return ""
	}
	return o.sweep
}

// codeVersion is the VCS revision the binary was built from, when known.
func codeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", ""
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return rev + dirty
}
