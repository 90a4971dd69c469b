package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/torchx"
)

// FrontierConfig is the `frontier:` section: which finished runs of a
// sweep `-mode frontier` decodes, and at which settings. It trains
// nothing. Every diffusion sampler is swept over its knob — steps T, or
// Fast-dLLM's threshold τ — at each batch size and length; AR decodes with
// its KV cache, the reference point.
type FrontierConfig struct {
	// Variants are the sweep's variants to decode (their run of Seed);
	// empty: every variant.
	Variants []string `mapstructure:"variants"`
	// Seed picks the run of each variant; 0: the sweep's first seed.
	Seed int64 `mapstructure:"seed"`
	// Batches are the batch sizes (sequences decoded at once).
	Batches []int `mapstructure:"batches"`
	// Lengths are the sequence lengths; empty: data.seq_len.
	Lengths []int `mapstructure:"lengths"`
	// LongLength, when > 0, is one more length for BD3-LM (and AR as its
	// reference): generation past the training length.
	LongLength int `mapstructure:"long_length"`
	// Samples is the number of sequences per point.
	Samples int `mapstructure:"samples"`
	// Steps are the T of the step-count samplers.
	Steps []int `mapstructure:"steps"`
	// Thresholds are the τ of the confidence samplers, run with T = L.
	Thresholds []float64 `mapstructure:"thresholds"`
}

// DefaultFrontierConfig measures batch 1 and 8 at the training length.
func DefaultFrontierConfig() FrontierConfig {
	return FrontierConfig{Batches: []int{1, 8}, Samples: 8, Steps: []int{16, 64, 256}, Thresholds: []float64{0.5, 0.7, 0.9}}
}

// Validate names the offending key.
func (f FrontierConfig) Validate() error {
	var errs []error
	for _, list := range []struct {
		key  string
		vals []int
	}{{"batches", f.Batches}, {"lengths", f.Lengths}, {"steps", f.Steps}} {
		for _, v := range list.vals {
			if v < 1 {
				errs = append(errs, fmt.Errorf("frontier.%s: %d, want positive values", list.key, v))
			}
		}
	}
	for _, t := range f.Thresholds {
		if !(t > 0 && t < 1) {
			errs = append(errs, fmt.Errorf("frontier.thresholds: %v is outside (0, 1)", t))
		}
	}
	if f.Samples < 1 || f.LongLength < 0 {
		errs = append(errs, fmt.Errorf("frontier.samples %d / long_length %d: want samples ≥ 1 and long_length ≥ 0", f.Samples, f.LongLength))
	}
	return errors.Join(errs...)
}

// frontierSetting is one decoding setting of a run.
type frontierSetting struct {
	sampler, knob string
	steps         int
	edit          func(*sampling.Config)
}

// frontierSettings are the settings a run is decoded with at length l,
// by its objective: AR with its KV cache; MDLM's cached ancestral sampler
// at each T, the confidence sampler at each τ (T = L), and Fast-dLLM's
// recipe (dual cache, confidence with τ, blocks of the run's block_len);
// BD3-LM's block-cached sampler at each T; D3PM and SEDD their own
// sampler at each T.
func frontierSettings(cfg *Config, f FrontierConfig, l int) []frontierSetting {
	var out []frontierSetting
	stepsOf := func(sampler string, edit func(*sampling.Config)) {
		for _, T := range f.Steps {
			out = append(out, frontierSetting{sampler, fmt.Sprintf("T=%d", T), T, edit})
		}
	}
	switch cfg.Objective.Name {
	case "ar":
		return []frontierSetting{{"ar", "KV cache", l, nil}}
	case "bd3lm":
		stepsOf("block-cached", nil)
	case "mdlm":
		stepsOf("ancestral-cached", nil)
		for _, tau := range f.Thresholds {
			out = append(out, frontierSetting{"confidence", fmt.Sprintf("τ=%g", tau), l, func(s *sampling.Config) { s.Threshold = tau }})
		}
		for _, tau := range f.Thresholds {
			out = append(out, frontierSetting{"block", fmt.Sprintf("dual τ=%g", tau), l, func(s *sampling.Config) {
				s.BlockSampler, s.BlockView, s.BlockCache, s.Threshold, s.Window = "confidence", "full", "dual", tau, max(s.Window, l)
			}})
		}
	default:
		stepsOf(cfg.Sampling.Sampler, nil)
	}
	return out
}

// frontier decodes the selected finished runs of a sweep at every setting,
// batch size and length, records each point (task frontier) and writes the
// table and the figures (report folder).
func frontier(ctx context.Context, cfg *Config, loaded config.Loaded, o options) error {
	if !cfg.Sweep.Enabled() || loaded.Path == "" {
		return usageError{fmt.Errorf("-mode frontier decodes the runs of a sweep: give a config file with a sweep: block")}
	}
	torchx.Lock()
	fc := cfg.Frontier
	seed := fc.Seed
	if seed == 0 && len(cfg.Sweep.Seeds) > 0 {
		seed = cfg.Sweep.Seeds[0]
	}
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	var runs []results.Run
	for _, r := range cfg.Sweep.Plan() {
		if (len(fc.Variants) > 0 && !slices.Contains(fc.Variants, r.Variant)) || (len(cfg.Sweep.Seeds) > 0 && r.Seed != seed) {
			continue
		}
		if st, err := store.RunStatus(r.Name); err != nil || st != results.StatusFinished {
			slog.Info("frontier: not finished, skipping", "run", r.Name)
			continue
		}
		rc, _, err := loadConfig(loaded.Path, append(append([]string{}, r.Sets...), o.sets...))
		if err != nil {
			return usageError{err}
		}
		rc.Name, rc.DB = r.Name, cfg.DB
		id, err := finishedRunID(store, r.Name)
		if err != nil {
			return err
		}
		if err := frontierRun(ctx, rc, fc, store, id, r.Variant); err != nil {
			return fmt.Errorf("frontier %s: %w", r.Name, err)
		}
		rs, err := store.Runs(results.RunFilter{Names: []string{r.Name}})
		if err != nil {
			return err
		}
		runs = append(runs, rs...)
	}
	if len(runs) == 0 {
		return fmt.Errorf("frontier: no finished run of the variants %v (seed %d) in %s", fc.Variants, seed, store.Path())
	}
	points, err := results.FrontierPoints(store, runs)
	if err != nil {
		return err
	}
	results.WriteFrontierTable(os.Stdout, points)
	files, err := results.WriteFrontierPlots(reportDir(cfg, o), points, results.PlotOptions{})
	for _, f := range files {
		fmt.Println(f)
	}
	return err
}

// frontierRun measures one run at every setting.
func frontierRun(ctx context.Context, cfg *Config, fc FrontierConfig, store *results.Store, runID int64, variant string) error {
	m, vocab, err := loadTrained(cfg, filepath.Join(runDir(cfg), "model.safetensors"))
	if err != nil {
		return err
	}
	defer m.vs.Destroy()
	ref, err := m.reference(cfg, vocab)
	if err != nil {
		return err
	}
	if ref != nil {
		defer ref.Close()
	}
	lengths := fc.Lengths
	if len(lengths) == 0 {
		lengths = []int{cfg.Data.SeqLen}
	}
	if fc.LongLength > 0 && (cfg.Objective.Name == "bd3lm" || cfg.Objective.Name == "ar") {
		lengths = append(slices.Clone(lengths), fc.LongLength)
	}
	var evs []results.Evaluation
	for _, l := range lengths {
		for _, st := range frontierSettings(cfg, fc, l) {
			for _, b := range fc.Batches {
				p, err := measurePoint(ctx, cfg, m, ref, st, b, l, fc.Samples)
				if err != nil {
					return fmt.Errorf("%s %s, batch %d, L = %d: %w", st.sampler, st.knob, b, l, err)
				}
				p.RunID, p.Variant = runID, variant
				slog.Info("frontier", "run", cfg.Name, "sampler", st.sampler, "knob", st.knob, "batch", b, "L", l,
					"tokens_per_s", p.TokensPerS, "gen_ppl", p.GenPPL, "model_calls", p.ModelCalls)
				evs = append(evs, p.Evaluations()...)
			}
		}
	}
	return store.AddEvaluations(evs)
}

// measurePoint decodes samples sequences of length l, batch at a time,
// and scores them.
func measurePoint(ctx context.Context, cfg *Config, m *method, ref *eval.Reference, st frontierSetting, batch, l, samples int) (results.FrontierPoint, error) {
	sc := cfg.Sampling
	sc.Sampler, sc.BatchSize, sc.Threshold, sc.BlockCache = st.sampler, batch, 0, "none"
	if st.edit != nil {
		st.edit(&sc)
	}
	smp, err := sampling.New(st.sampler, sc, m.proc, sampling.Net{Model: m.net, Objective: m.obj, Device: m.dev})
	if err != nil {
		return results.FrontierPoint{}, err
	}
	req := sc.Request(l, int64(cfg.Seed))
	req.N, req.Steps = samples, st.steps
	began := time.Now()
	res, err := smp.Generate(ctx, req)
	if err != nil {
		return results.FrontierPoint{}, err
	}
	wall := time.Since(began).Seconds()
	g, err := eval.ScoreSamples(ref, res, cfg.Eval.BatchSize)
	if err != nil {
		return results.FrontierPoint{}, err
	}
	batches := (samples + batch - 1) / batch
	return results.FrontierPoint{
		Sampler: st.sampler, Knob: st.knob, Steps: st.steps, Batch: batch, Len: l,
		GenPPL: g.GenPPL, Entropy: g.Entropy, TokensPerS: float64(samples*l) / wall, Latency: wall / float64(batches),
		ModelCalls: res.ModelCalls / batches,
	}, nil
}
