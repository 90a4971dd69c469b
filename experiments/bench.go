package main

import (
	"context"
	"os"

	gobench "github.com/dlmlab/difflm/bench"
	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/torchx"
)

// bench prints the Go-vs-PyTorch training speed table (issue 4) for the
// config's objective, model dropout, schedule and optimizer: see package
// bench. Both sides get the run-wide threads (auto: the usable CPUs), so
// that the count is explicit on both.
//
// Then the data-parallel rows (benchDDP): one rank with every usable CPU's
// thread against that many single-thread ranks.
func bench(ctx context.Context, cfg *Config, loaded config.Loaded, o options) error {
	torchx.Lock()
	threads := cfg.Train.Threads
	// V as the data pipeline makes it (data.vocab_size kept ids plus EOS
	// and UNK; all of a char, bytes or untrimmed GPT-2 vocabulary), without
	// reading a corpus.
	vocab := cfg.Data.VocabSize + 2
	if cfg.Data.VocabSize == 0 || cfg.Data.Tokenizer != data.TokGPT2 {
		v, err := data.NewVocab(cfg.Data.Tokenizer, cfg.Data.Normalize)
		if err != nil {
			return err
		}
		vocab = v.Size()
	}
	setup := gobench.Setup{
		Model: cfg.Model, Process: cfg.Process, Objective: cfg.Objective, Train: cfg.Train,
		Vocab: vocab, Threads: threads,
	}
	if err := gobench.Run(ctx, gobench.DefaultConfig(), setup, os.Stdout); err != nil {
		return err
	}
	return benchDDP(ctx, loaded.Path, o.sets, os.Stdout)
}
