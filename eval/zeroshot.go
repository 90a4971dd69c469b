package eval

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/dlmlab/difflm/data"
)

// ZeroShotBound is the perplexity bound on the held-out corpus zs, read
// with the data package as the run's training data is (sources, GPT-2
// BPE, the run's vocabulary, packing, length and BOS, the token cache;
// format and document split by file type, zs's own detokenizer), then
// scored like a validation split.
func ZeroShotBound(ctx context.Context, m Model, cfg Config, runData data.Config, vocab *data.Vocab, zs ZeroShot) (Result, error) {
	return onZeroShot(ctx, cfg, runData, vocab, zs, func(b Batches) (Result, error) {
		return Bound(ctx, m, cfg, zs.Name, b)
	})
}

// onZeroShot opens zs and scores its batches with score.
func onZeroShot(ctx context.Context, cfg Config, runData data.Config, vocab *data.Vocab, zs ZeroShot, score func(Batches) (Result, error)) (Result, error) {
	corpus, err := openZeroShot(ctx, runData, vocab, zs)
	if err != nil {
		return Result{}, fmt.Errorf("eval %s: %w", zs.Name, err)
	}
	defer corpus.Close()
	batches, err := corpus.EvalBatches(corpus.Train, cfg.BatchSize)
	if err != nil {
		return Result{}, fmt.Errorf("eval %s: %w", zs.Name, err)
	}
	return score(batches)
}

// openZeroShot loads zs as the whole "train" split of a corpus that
// shares the run's data settings. The vocabulary is pinned through
// data.vocab_file: a trimmed vocabulary must keep the run's ids, never be
// rebuilt from the zero-shot text.
func openZeroShot(ctx context.Context, runData data.Config, vocab *data.Vocab, zs ZeroShot) (*data.Corpus, error) {
	c := runData
	c.Dir = dataDir(runData)
	c.Train, c.Valid, c.Test = zs.Paths, nil, nil
	c.Split = []float64{1, 0, 0}
	c.Detokenizer = zs.Detokenizer
	if c.Detokenizer == "" {
		c.Detokenizer = "none"
	}
	c.Format, c.DocSplit = "auto", "auto"
	c.VocabSize = 0
	if vocab.Trimmed() {
		c.VocabSize = vocab.Size() - 2 // the kept ids, without EOS and UNK
	}
	c.VocabFile = filepath.Join(runData.CacheDir, "vocab-"+vocab.Hash()+".json")
	if err := vocab.Save(c.VocabFile); err != nil {
		return nil, err
	}
	corpus, err := data.Load(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := vocab.Verify(corpus.Vocab.Hash()); err != nil {
		corpus.Close()
		return nil, err
	}
	return corpus, nil
}
