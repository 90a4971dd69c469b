// Package results is the experiment results store of the harness and the
// comparison views built on it: one SQLite file that every run of a sweep
// writes into, a comparison table (terminal text and Markdown) and gonum
// plots (PNG and SVG).
//
// Tables (see migrations for the exact schema):
//   - runs: one row per run name, with its sweep, variant label (seeds of a
//     variant share it), config, code version, device, seed, tags and status;
//   - metrics: per-step scalars, unique per (run, step, split, name);
//   - evaluations: numbers measured on a run, unique per (run, task, metric,
//     params), e.g. valid/ppl_bound or gen/gen_ppl {"steps":64,...};
//   - samples: generated texts with their scores, model calls and tokens/s,
//     unique per (run, sampler, steps, idx).
//
// Every write is an upsert in its own transaction, so a run that is killed and
// resumed (StartRun with the same name) rewrites its rows instead of
// duplicating them. Training code does not depend on SQLite: it writes through
// the MetricSink interface, which Store.Sink returns for one run.
//
// A typical run:
//
//	s, err := results.Open("runs.db")
//	id, resumed, err := s.StartRun(results.RunInfo{Name: "owt-mdlm-s1", Variant: "mdlm", ...})
//	if errors.Is(err, results.ErrFinished) { /* skip */ }
//	train(..., s.Sink(id))
//	s.AddEvaluation(results.Evaluation{RunID: id, Task: results.TaskValid, Metric: results.MetricPPLBound, ...})
//	s.FinishRun(id, trainErr)
package results
