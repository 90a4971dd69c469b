// Package data turns text corpora into the token blocks the models train
// on, in pure Go (no libtorch), so it tests fast.
//
// The pipeline, driven by Config (the `data:` section of a run config):
//
//	sources (text/JSONL/parquet files, folders, globs, gzip, hf:// URLs)
//	  -> documents (doc_split; WikiText articles)
//	  -> detokenizer (none|wikitext|ptb|lambada, as MDLM)
//	  -> GPT-2 BPE (tiktoken-go r50k, memoised per piece, on every core)
//	  -> token cache (uint16 file keyed by sources, detokenizer and
//	     vocabulary; checksummed; memory-mapped)
//	  -> splits (by document, seeded) and the Vocab (full GPT-2 or trimmed)
//	  -> Batches (wrap or pad packing, B x L ids plus a loss mask, seeded
//	     per-epoch shuffle, a Position to checkpoint and restore).
//
// Vocab is the one definition of the token-id space: Size() real tokens and
// MaskID() == Size() for the absorbing state. LoadLambada yields the
// LAMBADA passages with context and target token spans. cmd/datafetch
// downloads the public files into the data folder.
//
// Typical use:
//
//	c, err := data.Load(ctx, cfg.Data)
//	defer c.Close()
//	it, err := c.TrainBatches(batchSize)
//	b, err := it.Next() // b.Tokens, b.Mask: B*L, row-major
//	pos, _ := it.Position().MarshalBinary() // into the checkpoint
package data
