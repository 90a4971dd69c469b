package data

import (
	"context"
	"os"
	"testing"
)

func warpeace(b *testing.B) string {
	raw, err := os.ReadFile(sharedFile(b, "warpeace/warpeace_input.txt"))
	if err != nil {
		b.Fatal(err)
	}
	return string(raw)
}

// BenchmarkTokenize is GPT-2 BPE on one core (MB/s from SetBytes).
func BenchmarkTokenize(b *testing.B) {
	text, v := warpeace(b), gpt2(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		v.encodeBase(nil, text)
	}
}

// BenchmarkTokenizeParallel is the chunked pipeline on all cores.
func BenchmarkTokenizeParallel(b *testing.B) {
	text, v := warpeace(b), gpt2(b)
	src := []Source{&memSource{name: "warpeace", docs: []string{text}}}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		err := tokenize(context.Background(), v, src, func(s string) string { return s }, func([]int32, bool) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPack measures shuffled packing of War and Peace (one document
// per paragraph) into 32x1024 batches (tokens/s; SetBytes counts one byte
// per token).
func BenchmarkPack(b *testing.B) {
	for _, mode := range []string{"wrap", "pad"} {
		b.Run(mode, func(b *testing.B) {
			v := gpt2(b)
			cfg := DefaultConfig()
			cfg.Train, cfg.Dir, cfg.DocSplit = []string{"warpeace/warpeace_input.txt"}, sharedData(b), "paragraph"
			srcs, err := OpenSources(context.Background(), cfg, cfg.Train)
			if err != nil {
				b.Fatal(err)
			}
			var docs [][]int32
			var cur []int32
			tokenize(context.Background(), v, srcs, func(s string) string { return s }, func(ids []int32, end bool) error {
				cur = append(cur, ids...)
				if end {
					docs, cur = append(docs, cur), nil
				}
				return nil
			})
			ds := &Dataset{toks: memTokens(docs), eos: int32(v.EOS())}
			it, err := ds.Batches(Packing{SeqLen: 1024, Mode: mode, BOS: true}, BatchOptions{BatchSize: 32, Shuffle: true, Seed: 1, Loop: true})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(32 * 1024)
			for b.Loop() {
				if _, err := it.Next(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*32*1024/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkLoadAll loads all of ../shared/data: cold (fresh cache) and
// cached.
func BenchmarkLoadAll(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Train = sharedData(b), allSharedFiles
	var size int64
	for _, f := range allSharedFiles {
		st, err := os.Stat(cfg.Dir + "/" + f)
		if err != nil {
			b.Skip(err)
		}
		size += st.Size()
	}
	load := func(b *testing.B, cfg Config) {
		c, err := Load(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.Run("first", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			cfg.CacheDir = b.TempDir()
			load(b, cfg)
		}
	})
	b.Run("cached", func(b *testing.B) {
		cfg.CacheDir = b.TempDir()
		load(b, cfg)
		b.SetBytes(size)
		for b.Loop() {
			load(b, cfg)
		}
	})
}
