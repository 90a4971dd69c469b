package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/torchx"
)

// sampleMode generates from a trained run: unconditional samples, or an
// infilling of -infill's masked spans. It prints the samples, the
// filmstrip of the first one, model calls and tokens/s, and stores the
// samples with the run's results.
func sampleMode(ctx context.Context, cfg *Config, o options) error {
	torchx.Lock()
	dir := runDir(cfg)
	ckpt := o.ckpt
	if ckpt == "" {
		var err error
		if ckpt, err = newestWeights(dir); err != nil {
			return err
		}
	}
	m, vocab, err := loadTrained(cfg, ckpt)
	if err != nil {
		return err
	}
	dev := m.dev

	name := firstNonEmpty(o.sampler, cfg.Sampling.Sampler)
	if cfg.Objective.Name == "ar" && o.sampler == "" {
		name = "ar"
	}
	smp, err := sampling.New(name, cfg.Sampling, m.proc, sampling.Net{Model: m.net, Objective: m.obj, Device: dev})
	if err != nil {
		return usageError{err}
	}
	req := cfg.Sampling.Request(firstPositive(o.length, cfg.Data.SeqLen), int64(cfg.Seed))
	req.N = firstPositive(o.n, req.N)
	req.Steps = firstPositive(o.steps, req.Steps)
	if o.infill != "" {
		tmpl, err := sampling.ParseInfill(o.infill, vocab.Encode)
		if err != nil {
			return usageError{fmt.Errorf("-infill: %w", err)}
		}
		req.Template, req.Len = tmpl, 0
	}
	req.Recorder = &sampling.Recorder{Steps: filmSteps(req.Steps)}
	res, err := smp.Generate(ctx, req)
	if err != nil {
		return err
	}
	g, err := eval.ScoreSamples(nil, res, cfg.Eval.BatchSize)
	if err != nil {
		return err
	}
	decode := func(ids []int) string { return vocab.Decode(ids) }
	for i, toks := range res.Tokens {
		fmt.Printf("── sample %d ──\n%s\n", i, decode(toks))
	}
	if res.Filmstrip != nil {
		fmt.Printf("── filmstrip of sample 0 ──\n%s\n", res.Filmstrip.Text(decode))
		if err := writeFilmstrip(dir, fmt.Sprintf("filmstrip-%s-T%d-sample", name, req.Steps), res.Filmstrip, vocab); err != nil {
			return err
		}
	}
	fmt.Printf("sampler %s: %d sequences, %d steps, %d model calls, %.1f tokens/s (%s), entropy %.3f\n",
		name, len(res.Tokens), req.Steps, res.ModelCalls, g.TokensPerS, res.Elapsed.Round(time.Millisecond), g.Entropy)
	return storeSamples(cfg, name, req.Steps, res, g, vocab)
}

// loadTrained builds the run's method and loads weights from ckpt (the EMA
// ones of a training checkpoint, or exported final weights), checking that
// they were trained on the run's vocabulary.
func loadTrained(cfg *Config, ckpt string) (*method, *data.Vocab, error) {
	vocab, err := data.LoadVocab(filepath.Join(runDir(cfg), "vocab.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w (train it first)", cfg.Name, err)
	}
	dev, err := torchx.ParseDevice(cfg.Device)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("device: %w", err)}
	}
	torchx.SetThreads(cfg.Train.Threads)
	m, err := buildMethod(cfg, vocab.Size(), dev)
	if err != nil {
		return nil, nil, err
	}
	meta, err := checkpoint.LoadInto(m.vs, ckpt, "ema")
	if err != nil {
		return nil, nil, err
	}
	if err := vocab.Verify(meta[checkpoint.MetaVocabHash]); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", ckpt, err)
	}
	return m, vocab, nil
}

// storeSamples records samples under the run's row, when the run is in the
// database.
func storeSamples(cfg *Config, name string, steps int, res sampling.Result, g eval.GenScores, vocab *data.Vocab) error {
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	runs, err := store.Runs(results.RunFilter{Names: []string{cfg.Name}})
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("run %s is not in %s; samples not stored", cfg.Name, store.Path())
	}
	tag := name + "/cli"
	samples := make([]results.Sample, len(res.Tokens))
	for i, toks := range res.Tokens {
		samples[i] = results.Sample{RunID: runs[0].ID, Sampler: tag, Steps: steps, Idx: i, Text: vocab.Decode(toks),
			Scores: g.Scores(i), ModelCalls: int64(res.ModelCalls), TokensPerS: g.TokensPerS, Meta: sampleMeta(!math.IsNaN(g.GenPPL))}
	}
	return store.AddSamples(samples)
}

// newestWeights is the run's newest valid checkpoint, or its exported
// final weights.
func newestWeights(dir string) (string, error) {
	p, err := checkpoint.Latest(dir)
	if err == nil {
		return p, nil
	}
	final := filepath.Join(dir, "model.safetensors")
	if _, serr := os.Stat(final); serr == nil {
		return final, nil
	}
	if errors.Is(err, checkpoint.ErrNotFound) {
		return "", fmt.Errorf("no checkpoint in %s (train the run first, or pass -ckpt)", dir)
	}
	return "", err
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func firstPositive(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}
