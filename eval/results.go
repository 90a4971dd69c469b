package eval

import (
	"fmt"
	"math"

	"github.com/dlmlab/difflm/results"
)

// MetricEntropy names the mean per-sample unigram entropy (nats).
const MetricEntropy = results.MetricEntropy

// MetricDistinct names the mean per-sample distinct-n: distinct_1 … distinct_4.
func MetricDistinct(n int) string { return fmt.Sprintf("distinct_%d", n) }

// Evaluations are the rows of a bound for task (RunID left 0 for the
// caller): the perplexity bound, the NLL in nats per token and (with byte
// lengths) bits per character, each with its standard error, N = tokens
// scored.
func (r Result) Evaluations(task string) []results.Evaluation {
	out := []results.Evaluation{
		{Task: task, Metric: results.MetricPPLBound, Value: r.Value, Stderr: r.Stderr, N: r.Tokens},
		{Task: task, Metric: results.MetricNLL, Value: r.NLL, Stderr: r.NLLStderr, N: r.Tokens},
	}
	if !math.IsNaN(r.BPC) {
		out = append(out, results.Evaluation{Task: task, Metric: results.MetricBPC, Value: r.BPC, Stderr: r.BPCStderr, N: r.Tokens})
	}
	if !math.IsNaN(r.UNKShare) {
		out = append(out, results.Evaluation{Task: task, Metric: results.MetricUNKShare, Value: r.UNKShare,
			Stderr: math.NaN(), N: r.Tokens})
	}
	return out
}

// Evaluations are the rows of one point of the generation sweep (task
// gen, params steps and sampler): generative perplexity under MDLM's and
// SEDD's protocols (when there was a reference), entropy, distinct-1..4,
// model calls (NFE) and tokens per second.
func (g GenScores) Evaluations(sampler string, steps int) []results.Evaluation {
	params := map[string]any{results.ParamSteps: steps, results.ParamSampler: sampler}
	row := func(metric string, v, se float64, n int64) results.Evaluation {
		return results.Evaluation{Task: results.TaskGen, Metric: metric, Value: v, Stderr: se, N: n, Params: params}
	}
	n, none := int64(g.Samples), math.NaN()
	var out []results.Evaluation
	if !math.IsNaN(g.GenPPL) {
		out = append(out, row(results.MetricGenPPL, g.GenPPL, g.GenPPLStderr, g.Tokens),
			row(results.MetricGenPPLSEDD, g.GenPPLSEDD, g.GenPPLSEDDStderr, n))
	}
	out = append(out, row(MetricEntropy, g.Entropy, g.EntropyStderr, n))
	for k, d := range g.Distinct {
		out = append(out, row(MetricDistinct(k+1), d, none, n))
	}
	return append(out,
		row(results.MetricModelCalls, float64(g.ModelCalls), none, n),
		row(results.MetricTokensPerS, g.TokensPerS, none, g.Tokens))
}

// Scores are sample i's per-sample scores, for results.Sample.Scores.
func (g GenScores) Scores(i int) map[string]float64 {
	s := g.PerSample[i]
	return map[string]float64{results.MetricGenPPL: s.GenPPL, results.MetricNLL: s.NLL, MetricEntropy: s.Entropy}
}
