package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/results"
)

// UnigramCounts counts every token of ds, plus one EOS per document (the
// separator that wrap packing scores), over V = vocab.Size() ids: the
// statistics of a model that ignores context entirely.
func UnigramCounts(ds *data.Dataset, vocab *data.Vocab) []int64 {
	counts := make([]int64, vocab.Size())
	for i := range ds.NumDocs() {
		for _, id := range ds.Doc(i) {
			counts[id]++
		}
		counts[vocab.EOS()]++
	}
	return counts
}

// Unigram is the perplexity of the unigram model counts (add-½ smoothed)
// on exactly the tokens a bound with the same cfg would score: the first
// cfg.MaxBatches batches, padding excluded. It is the floor of "learned
// nothing but token frequencies": a bound near it means the network has not
// yet used context.
//
// byteLens (as Model.ByteLens; nil for none) gives the result its bits per
// character.
func Unigram(ctx context.Context, counts []int64, byteLens []float64, cfg Config, batches Batches) (Result, error) {
	var total float64
	for _, c := range counts {
		total += float64(c)
	}
	denom := total + float64(len(counts))/2
	var nats, nbytes float64
	var tokens int64
	for n := 0; cfg.MaxBatches == 0 || n < cfg.MaxBatches; n++ {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		b, err := batches.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("unigram: batch %d: %w", n, err)
		}
		for i, w := range b.Mask[:b.Rows*b.L] {
			if w <= 0 {
				continue
			}
			id := b.Tokens[i]
			if id < 0 || int(id) >= len(counts) {
				return Result{}, fmt.Errorf("unigram: token %d outside the %d counted ids", id, len(counts))
			}
			nats -= math.Log((float64(counts[id]) + 0.5) / denom)
			tokens++
			if byteLens != nil {
				nbytes += byteLens[id]
			}
		}
	}
	if tokens == 0 {
		return Result{}, errors.New("unigram: no tokens to score")
	}
	nll := nats / float64(tokens)
	bpc := math.NaN()
	if nbytes > 0 && !math.IsNaN(nbytes) {
		bpc = nats / nbytes / math.Ln2
	}
	return Result{Value: math.Exp(nll), NLL: nll, BPC: bpc, BPCStderr: 0, Tokens: tokens, Bytes: nbytes,
		UNKShare: math.NaN(), K: 1, Exact: true}, nil
}

// UnigramEvaluations are the rows of a unigram model for task: its
// perplexity and, with byte lengths, its bits per character.
func (r Result) UnigramEvaluations(task string) []results.Evaluation {
	out := []results.Evaluation{{Task: task, Metric: results.MetricUnigramPPL, Value: r.Value, Stderr: 0, N: r.Tokens}}
	if !math.IsNaN(r.BPC) {
		out = append(out, results.Evaluation{Task: task, Metric: results.MetricUnigramBPC, Value: r.BPC, Stderr: 0, N: r.Tokens})
	}
	return out
}

// ZeroShotUnigram is Unigram on the zero-shot corpus zs, read as
// ZeroShotBound reads it.
func ZeroShotUnigram(ctx context.Context, counts []int64, cfg Config, runData data.Config, vocab *data.Vocab, zs ZeroShot) (Result, error) {
	return onZeroShot(ctx, cfg, runData, vocab, zs, func(b Batches) (Result, error) {
		return Unigram(ctx, counts, vocab.ByteLens(), cfg, b)
	})
}
