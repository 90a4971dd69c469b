package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/train"
)

// evalModel is what the eval package needs to know about the method.
func (m *method) evalModel(cfg *Config, vocab *data.Vocab) eval.Model {
	return eval.Model{Net: m.net, Objective: m.obj, Steps: cfg.Objective.Steps, Process: m.proc,
		SeqLen: cfg.Data.SeqLen, Device: m.dev, UNK: max(0, vocab.UNK()), ByteLens: vocab.ByteLens()}
}

// quickEval is the trainer's periodic validation: the bound on at most a
// few batches of the validation split, so it stays cheap.
func (m *method) quickEval(cfg *Config, corpus *data.Corpus) train.EvalFunc {
	if corpus.Valid == nil {
		return nil
	}
	ecfg := cfg.Eval
	ecfg.TDraws = 1
	if ecfg.MaxBatches == 0 || ecfg.MaxBatches > 4 {
		ecfg.MaxBatches = 4
	}
	// Built once: the byte lengths of a full GPT-2 vocabulary take 50k
	// decodes, not something to repeat at every evaluation.
	em := m.evalModel(cfg, corpus.Vocab)
	return func(step int) (map[string]float64, error) {
		batches, err := corpus.EvalBatches(corpus.Valid, ecfg.BatchSize)
		if err != nil {
			return nil, err
		}
		r, err := eval.Bound(context.Background(), em, ecfg, results.TaskValid, batches)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{"loss": r.NLL, "ppl_bound": r.Value}
		if !math.IsNaN(r.BPC) {
			out[results.MetricBPC] = r.BPC
		}
		return out, nil
	}
}

// evaluate computes every configured evaluation and records it: the bound
// on the validation and test splits, zero-shot bounds on other corpora,
// and LAMBADA (bound and last-word accuracy); beside each corpus bound, the
// perplexity of the training split's unigram model on the same tokens.
//
// In a data-parallel job (ranks not nil) every rank calls it: the bounds'
// passes are split over the ranks (eval.seeding per-batch), and rank 0,
// the one with a store, computes the rest and records everything; the
// others (store nil) take part in the bounds only.
func (m *method) evaluate(ctx context.Context, cfg *Config, corpus *data.Corpus, store *results.Store, runID int64, ranks eval.Ranks) error {
	em := m.evalModel(cfg, corpus.Vocab)
	em.Ranks = ranks
	follower := store == nil
	counts := eval.UnigramCounts(corpus.Train, corpus.Vocab)
	var rows []results.Evaluation
	var seqs []results.SequenceBounds
	bound := func(task string, r eval.Result) {
		q := r.PerSequence
		q.RunID, q.Task = runID, task
		seqs = append(seqs, q)
	}
	add := func(es ...results.Evaluation) {
		for _, e := range es {
			e.RunID = runID
			rows = append(rows, e)
			slog.Info("eval", "task", e.Task, "metric", e.Metric, "value", e.Value, "stderr", e.Stderr, "n", e.N)
		}
	}
	for _, split := range []struct {
		task string
		ds   *data.Dataset
	}{{results.TaskValid, corpus.Valid}, {"test", corpus.Test}} {
		if split.ds == nil {
			continue
		}
		batches, err := corpus.EvalBatches(split.ds, cfg.Eval.BatchSize)
		if err != nil {
			return err
		}
		r, err := eval.Bound(ctx, em, cfg.Eval, split.task, batches)
		if err != nil {
			return fmt.Errorf("eval %s: %w", split.task, err)
		}
		add(r.Evaluations(split.task)...)
		bound(split.task, r)
		if follower {
			continue
		}
		if batches, err = corpus.EvalBatches(split.ds, cfg.Eval.BatchSize); err != nil {
			return err
		}
		u, err := eval.Unigram(ctx, counts, em.ByteLens, cfg.Eval, batches)
		if err != nil {
			return fmt.Errorf("eval %s: %w", split.task, err)
		}
		add(u.UnigramEvaluations(split.task)...)
		if batches, err = corpus.EvalBatches(split.ds, cfg.Eval.BatchSize); err != nil {
			return err
		}
		terms, err := eval.BoundTerms(ctx, em, cfg.Eval, batches)
		if err != nil {
			return fmt.Errorf("eval %s bound terms: %w", split.task, err)
		}
		for _, name := range slices.Sorted(maps.Keys(terms)) {
			add(results.Evaluation{Task: split.task, Metric: results.TermPrefix + name, Value: terms[name], Stderr: math.NaN(), N: r.Tokens})
		}
	}
	for _, zs := range cfg.Eval.ZeroShot {
		r, err := eval.ZeroShotBound(ctx, em, cfg.Eval, cfg.Data, corpus.Vocab, zs)
		if err != nil {
			return fmt.Errorf("eval zero-shot %s: %w", zs.Name, err)
		}
		add(r.Evaluations(zs.Name)...)
		bound(zs.Name, r)
		if follower {
			continue
		}
		u, err := eval.ZeroShotUnigram(ctx, counts, cfg.Eval, cfg.Data, corpus.Vocab, zs)
		if err != nil {
			return fmt.Errorf("eval zero-shot %s: %w", zs.Name, err)
		}
		add(u.UnigramEvaluations(zs.Name)...)
	}
	exs, err := eval.LoadLambada(cfg.Eval, cfg.Data, corpus.Vocab)
	if err != nil {
		return err
	}
	if exs != nil {
		r, err := eval.LambadaBound(ctx, em, cfg.Eval, corpus.Vocab, exs)
		if err != nil {
			return fmt.Errorf("eval lambada bound: %w", err)
		}
		add(r.Evaluations(results.TaskLAMBADA)...)
		bound(results.TaskLAMBADA, r)
		if follower {
			return nil
		}
		if em.CanFill() {
			acc, err := eval.LambadaAccuracy(ctx, em, cfg.Eval, corpus.Vocab, exs)
			if err != nil {
				return fmt.Errorf("eval lambada accuracy: %w", err)
			}
			add(acc.Evaluations(results.TaskLAMBADA)...)
		} else {
			slog.Warn("eval: LAMBADA accuracy not measured: this objective gives no clean-token distribution to fill the last word from (its bound is reported)",
				"objective", cfg.Objective.Name)
		}
	}
	if follower {
		return nil
	}
	return store.AddEvaluations(rows, seqs...)
}

// selfReference as eval.ar_reference makes an AR run score its own samples.
const selfReference = "self"

// sampleAndScore draws eval.gen_samples sequences for every step count in
// eval.gen_steps, scores them (generative perplexity under the AR
// reference when one is named, entropy, distinct-n) and records samples
// and scores. The first sequence's filmstrip at the largest step count is
// written to the run folder as text and PNG; the samples and filmstrip of
// that step count are returned for the run's summary.
func (m *method) sampleAndScore(ctx context.Context, cfg *Config, corpus *data.Corpus, store *results.Store, runID int64) (*genOutcome, error) {
	if cfg.Eval.GenSamples == 0 || len(cfg.Eval.GenSteps) == 0 {
		return nil, nil
	}
	name := cfg.Eval.GenSampler
	if name == "" {
		name = cfg.Sampling.Sampler
	}
	if cfg.Objective.Name == "ar" {
		name = "ar"
	}
	smp, err := sampling.New(name, cfg.Sampling, m.proc, sampling.Net{Model: m.net, Objective: m.obj, Device: m.dev})
	if err != nil {
		return nil, err
	}
	ref, err := m.reference(cfg, corpus.Vocab)
	if err != nil {
		return nil, err
	}
	if ref != nil {
		defer ref.Close()
	}
	steps := cfg.Eval.GenSteps
	if name == "ar" {
		steps = steps[:1] // ar takes one step per token whatever T says
	}
	var last *genOutcome
	for i, T := range steps {
		req := cfg.Sampling.Request(cfg.Data.SeqLen, int64(cfg.Seed)+int64(T))
		req.N, req.Steps = cfg.Eval.GenSamples, T
		if i == len(steps)-1 {
			req.Recorder = &sampling.Recorder{Steps: filmSteps(T)}
		}
		res, err := smp.Generate(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("sample %s T=%d: %w", name, T, err)
		}
		g, err := eval.ScoreSamples(ref, res, cfg.Eval.BatchSize)
		if err != nil {
			return nil, err
		}
		evs := g.Evaluations(name, T)
		samples := make([]results.Sample, len(res.Tokens))
		for j, toks := range res.Tokens {
			samples[j] = results.Sample{RunID: runID, Sampler: name, Steps: T, Idx: j, Text: corpus.Vocab.Decode(toks),
				Scores: g.Scores(j), ModelCalls: int64(res.ModelCalls), TokensPerS: g.TokensPerS, Meta: sampleMeta(ref != nil)}
		}
		for k := range evs {
			evs[k].RunID = runID
		}
		if err := store.AddEvaluations(evs); err != nil {
			return nil, err
		}
		if err := store.AddSamples(samples); err != nil {
			return nil, err
		}
		slog.Info("samples", "sampler", name, "steps", T, "n", len(res.Tokens), "gen_ppl", g.GenPPL,
			"entropy", g.Entropy, "model_calls", res.ModelCalls, "tokens_per_s", g.TokensPerS)
		last = &genOutcome{sampler: name, steps: T, film: res.Filmstrip}
		for _, sm := range samples {
			last.texts = append(last.texts, sm.Text)
		}
		if res.Filmstrip != nil {
			if err := writeFilmstrip(runDir(cfg), fmt.Sprintf("filmstrip-%s-T%d", name, T), res.Filmstrip, corpus.Vocab); err != nil {
				return nil, err
			}
		}
	}
	return last, nil
}

// reference is the AR model that scores generated text
// (eval.ar_reference): nil for none, the run's own network for self, else
// the named checkpoint. Close it when done.
func (m *method) reference(cfg *Config, vocab *data.Vocab) (*eval.Reference, error) {
	switch cfg.Eval.ARReference {
	case "":
		return nil, nil
	case selfReference:
		mcfg, err := cfg.Model.Resolve()
		if err != nil {
			return nil, err
		}
		return &eval.Reference{Net: m.net, Vocab: vocab.Size(), EOS: vocab.EOS(), MaxLen: mcfg.MaxLen, Device: m.dev}, nil
	}
	return eval.LoadReference(cfg.Eval.ARReference, vocab, m.dev)
}

// sampleMeta is what a sample row records of how it was made: the sampling
// dtype (every sampler draws in float64) and, when scored, the generative
// perplexity protocol of its gen_ppl score.
func sampleMeta(scored bool) map[string]string {
	m := map[string]string{"dtype": "float64"}
	if scored {
		m["gen_ppl_protocol"] = eval.ProtocolMDLM
	}
	return m
}

// filmSteps picks about a dozen frames of a T-step chain.
func filmSteps(T int) []int {
	var out []int
	for k := 0; k <= 12; k++ {
		out = append(out, k*T/12)
	}
	return out
}

// writeFilmstrip writes the unmasking filmstrip as text (▒ for masks) and
// as a PNG picture.
func writeFilmstrip(dir, base string, f *sampling.Filmstrip, vocab *data.Vocab) error {
	decode := func(ids []int) string { return vocab.Decode(ids) }
	txt := filepath.Join(dir, base+".txt")
	if err := os.WriteFile(txt, []byte(f.Text(decode)), 0o644); err != nil {
		return err
	}
	png := filepath.Join(dir, base+".png")
	out, err := os.Create(png)
	if err != nil {
		return err
	}
	if err := f.PNG(out, decode, 1200); err != nil {
		out.Close()
		return err
	}
	slog.Info("filmstrip", "text", txt, "png", png)
	return out.Close()
}
