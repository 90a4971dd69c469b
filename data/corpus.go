package data

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"
)

// Corpus is what a run trains and evaluates on: the vocabulary and the
// three splits, each backed by a memory-mapped token cache.
type Corpus struct {
	Vocab *Vocab
	// Train is always present; Valid and Test are nil when the config
	// gives no sources and no fraction for them.
	Train, Valid, Test *Dataset
	cfg                Config
	toks               []*tokenFile
}

var splitNames = [3]string{"train", "valid", "test"}

// Load validates cfg, tokenises its sources (or maps them from the cache
// when an earlier run already did), splits them and settles the
// vocabulary. Sources are streamed: memory holds a few chunks of text, not
// the corpus.
func Load(ctx context.Context, cfg Config) (*Corpus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := NewVocab(cfg.Tokenizer, cfg.normalize())
	if err != nil {
		return nil, fmt.Errorf("data.tokenizer: %w", err)
	}
	c := &Corpus{cfg: cfg}
	done := false
	defer func() {
		if !done {
			c.Close()
		}
	}()
	var groups [3]*tokenFile
	var keys [3]string
	for i, specs := range [][]string{cfg.Train, cfg.Valid, cfg.Test} {
		if len(specs) > 0 {
			if groups[i], keys[i], err = c.tokenizeGroup(ctx, base, splitNames[i], specs); err != nil {
				return nil, err
			}
		}
	}
	var docs [3][]int32 // nil: the whole group
	if len(cfg.Valid) == 0 && len(cfg.Test) == 0 {
		if docs, err = splitDocs(groups[0].NumDocs(), cfg.Split, cfg.Seed); err != nil {
			return nil, err
		}
		for i := 1; i < 3; i++ {
			if len(docs[i]) > 0 {
				groups[i], keys[i] = groups[0], keys[0]
			}
		}
	}
	if c.Vocab, err = c.chooseVocab(base, &Dataset{toks: groups[0], docs: docs[0]}); err != nil {
		return nil, err
	}
	if c.Vocab.Trimmed() {
		remapped := map[*tokenFile]*tokenFile{}
		for i, g := range groups {
			if g == nil {
				continue
			}
			if remapped[g] == nil {
				if remapped[g], err = c.remap(g, keys[i]); err != nil {
					return nil, err
				}
			}
			groups[i] = remapped[g]
		}
	}
	sets := [3]**Dataset{&c.Train, &c.Valid, &c.Test}
	for i, g := range groups {
		if g != nil {
			*sets[i] = &Dataset{Name: splitNames[i], toks: g, docs: docs[i], eos: int32(c.Vocab.EOS())}
		}
	}
	done = true
	return c, nil
}

// tokenizeGroup maps (or builds) the token cache of one source list in the
// base vocabulary's ids (GPT-2's, before any trimming).
func (c *Corpus) tokenizeGroup(ctx context.Context, v *Vocab, split string, specs []string) (*tokenFile, string, error) {
	srcs, err := OpenSources(ctx, c.cfg, specs)
	if err != nil {
		return nil, "", fmt.Errorf("data.%s: %w", split, err)
	}
	detok, err := NewDetokenizer(c.cfg.Detokenizer)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	// v.Hash() covers the tokenizer and the normalisation.
	fmt.Fprintf(h, "difflm-tokens/v%d|gpt2-r50k|%s|detok=%s\n", cacheVersion, v.Hash(), c.cfg.Detokenizer)
	for _, s := range srcs {
		fmt.Fprintln(h, s.Fingerprint())
	}
	key := hex.EncodeToString(h.Sum(nil))[:20]
	start := time.Now()
	t, hit, err := cachedTokens(c.cfg.CacheDir, key, tokenWidth(v), func(w *cacheWriter) error {
		return tokenize(ctx, v, srcs, detok, func(ids []int32, end bool) error {
			err := w.write(ids)
			if end {
				w.endDoc()
			}
			return err
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("data.%s: %w", split, err)
	}
	c.toks = append(c.toks, t)
	if t.Len() == 0 {
		return nil, "", fmt.Errorf("data.%s: the corpus %v is empty (0 tokens)", split, specs)
	}
	slog.Info("data: corpus ready", "split", split, "sources", len(srcs), "docs", t.NumDocs(), "tokens", t.Len(),
		"cached", hit, "file", t.path, "seconds", time.Since(start).Seconds())
	return t, key, nil
}

// chooseVocab loads data.vocab_file when it exists, else builds the full or
// trimmed vocabulary and saves it in the cache (and to vocab_file if set).
func (c *Corpus) chooseVocab(base *Vocab, train *Dataset) (*Vocab, error) {
	cfg := c.cfg
	if cfg.VocabFile != "" {
		v, err := LoadVocab(cfg.VocabFile)
		if err == nil {
			if v.base != base.base || v.norm != base.norm {
				return nil, fmt.Errorf("data.vocab_file %s is tokenizer %s, normalize %s, but data.tokenizer is %s, normalize %s",
					cfg.VocabFile, v.base, v.norm, base.base, base.norm)
			}
			k := 0
			if v.Trimmed() {
				k = len(v.keep)
			}
			if k != cfg.VocabSize && v.base == TokGPT2 {
				return nil, fmt.Errorf("data.vocab_file %s keeps %d tokens but data.vocab_size is %d", cfg.VocabFile, k, cfg.VocabSize)
			}
			return v, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	v := base
	if cfg.VocabSize > 0 && base.base != TokGPT2 {
		slog.Info("data: vocab_size applies to the gpt2 tokenizer only; this one has a fixed vocabulary",
			"tokenizer", base.base, "vocab_size", cfg.VocabSize, "V", base.Size())
	}
	if cfg.VocabSize > 0 && base.base == TokGPT2 {
		counts := make([]int64, gpt2Size)
		for d := range train.NumDocs() {
			s, e := train.span(d)
			for i := s; i < e; i++ {
				counts[train.toks.At(i)]++
			}
		}
		var err error
		if cfg.VocabSize >= gpt2Size {
			return nil, fmt.Errorf("data.vocab_size: k = %d is outside 1..%d", cfg.VocabSize, gpt2Size-1)
		}
		if v, err = trimVocab(counts, cfg.VocabSize, base.norm); err != nil {
			return nil, fmt.Errorf("data.vocab_size: %w", err)
		}
		if len(v.keep) < cfg.VocabSize {
			slog.Warn("data: the training split has fewer distinct tokens than data.vocab_size",
				"vocab_size", cfg.VocabSize, "kept", len(v.keep))
		}
	}
	if err := v.Save(filepath.Join(cfg.CacheDir, "vocab-"+v.Hash()+".json")); err != nil {
		return nil, err
	}
	if cfg.VocabFile != "" {
		if err := v.Save(cfg.VocabFile); err != nil {
			return nil, err
		}
		v.file = cfg.VocabFile
	}
	return v, nil
}

// remap maps (or builds) the cache of g in the trimmed vocabulary's ids.
func (c *Corpus) remap(g *tokenFile, key string) (*tokenFile, error) {
	v := c.Vocab
	t, _, err := cachedTokens(c.cfg.CacheDir, key+"-"+v.Hash(), tokenWidth(v), func(w *cacheWriter) error {
		buf := make([]int32, 0, 1<<16)
		for d := range g.NumDocs() {
			s, e := g.Span(d)
			for i := s; i < e; i++ {
				buf = append(buf, v.fromGPT2(g.At(i)))
				if len(buf) == cap(buf) || i == e-1 {
					if err := w.write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
			w.endDoc()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.toks = append(c.toks, t)
	return t, nil
}

// tokenWidth is the bytes per token of v's cache files: uint16 whenever the
// ids fit, which they do for GPT-2 (50257) and any trimming of it.
func tokenWidth(v *Vocab) int {
	if v.Size() <= 1<<16 {
		return 2
	}
	return 4
}

// Packing is the packing the config asks for.
func (c *Corpus) Packing() Packing {
	return Packing{SeqLen: c.cfg.SeqLen, Mode: c.cfg.Pack, BOS: c.cfg.BOS}
}

// TrainBatches is the training iterator: shuffled by data.seed, endless.
func (c *Corpus) TrainBatches(batchSize int) (*Batches, error) {
	return c.Train.Batches(c.Packing(), BatchOptions{BatchSize: batchSize, Shuffle: true, Seed: c.cfg.Seed, Loop: true})
}

// EvalBatches is one ordered pass over ds (c.Valid or c.Test).
func (c *Corpus) EvalBatches(ds *Dataset, batchSize int) (*Batches, error) {
	if ds == nil {
		return nil, errors.New("eval batches: this corpus has no such split")
	}
	return ds.Batches(c.Packing(), BatchOptions{BatchSize: batchSize})
}

// Close unmaps the token caches.
func (c *Corpus) Close() error {
	var errs []error
	for _, t := range c.toks {
		errs = append(errs, t.Close())
	}
	c.toks = nil
	return errors.Join(errs...)
}
