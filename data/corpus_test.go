package data

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadOK(t *testing.T, cfg Config) *Corpus {
	t.Helper()
	c, err := Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLoadWikitextSplit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.CacheDir = sharedData(t), t.TempDir()
	cfg.Train, cfg.Detokenizer, cfg.SeqLen = []string{"wikitext-2/valid.txt"}, "wikitext", 64
	c := loadOK(t, cfg)
	if c.Train.NumDocs() != 54 || c.Valid.NumDocs() != 3 || c.Test.NumDocs() != 3 || c.Vocab.Size() != 50257 {
		t.Fatalf("docs %d/%d/%d", c.Train.NumDocs(), c.Valid.NumDocs(), c.Test.NumDocs())
	}
	// Each document is the GPT-2 encoding of its detokenised article.
	srcs, _ := OpenSources(context.Background(), cfg, cfg.Train)
	detok, _ := NewDetokenizer("wikitext")
	var articles []string
	for d, err := range srcs[0].Docs(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		articles = append(articles, detok(d.Text))
	}
	all := &Dataset{toks: c.Train.toks}
	for i, a := range articles {
		if !slices.Equal(all.Doc(i), c.Vocab.Encode(a)) {
			t.Fatalf("article %d tokens differ", i)
		}
	}
	total := c.Train.NumTokens() + c.Valid.NumTokens() + c.Test.NumTokens()
	if total != all.NumTokens() || total < 200_000 {
		t.Errorf("split tokens %d, corpus %d", total, all.NumTokens())
	}
	// A second load maps the same cache file instead of tokenising.
	files, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "tokens-*.bin"))
	st1, _ := os.Stat(files[0])
	c2 := loadOK(t, cfg)
	files2, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "tokens-*.bin"))
	st2, _ := os.Stat(files2[0])
	if len(files) != 1 || len(files2) != 1 || !st1.ModTime().Equal(st2.ModTime()) || c2.Train.NumTokens() != c.Train.NumTokens() {
		t.Errorf("second load rebuilt the cache: %v %v", files, files2)
	}
	// Other detokenizer, other cache file.
	cfg.Detokenizer, cfg.DocSplit = "none", "article"
	loadOK(t, cfg)
	if files, _ = filepath.Glob(filepath.Join(cfg.CacheDir, "tokens-*.bin")); len(files) != 2 {
		t.Errorf("detokenizer not in the cache key: %v", files)
	}
	// Training batches hold real ids only.
	it, err := c.TrainBatches(8)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := it.Next()
	if len(b.Tokens) != 8*64 || slices.Max(b.Tokens) >= int64(c.Vocab.Size()) || b.Rows != 8 {
		t.Errorf("batch shape or ids wrong")
	}
	if _, err := c.EvalBatches(c.Valid, 4); err != nil {
		t.Error(err)
	}
}

func TestLoadTrimmedVocab(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Dir, cfg.CacheDir = sharedData(t), filepath.Join(dir, "cache")
	cfg.Train, cfg.DocSplit, cfg.VocabSize = []string{"tinyshakespeare/input.txt"}, "paragraph", 2000
	cfg.VocabFile = filepath.Join(dir, "ckpt", "vocab.json")
	c := loadOK(t, cfg)
	v := c.Vocab
	if v.Size() != 2002 || v.MaskID() != 2002 || v.EOS() != 2000 || v.UNK() != 2001 {
		t.Fatalf("size %d", v.Size())
	}
	if _, err := os.Stat(cfg.VocabFile); err != nil {
		t.Fatalf("vocab file not saved: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.CacheDir, "vocab-"+v.Hash()+".json")); err != nil {
		t.Fatalf("vocab not saved in the cache: %v", err)
	}
	// Documents without UNK decode to their paragraph exactly.
	srcs, _ := OpenSources(context.Background(), cfg, cfg.Train)
	var paras []string
	for d := range srcs[0].Docs(context.Background()) {
		paras = append(paras, d.Text)
	}
	all := &Dataset{toks: c.Train.toks}
	exact, unk := 0, 0
	for i, p := range paras {
		ids := all.Doc(i)
		if slices.Max(ids) >= v.Size() {
			t.Fatalf("id out of range in doc %d", i)
		}
		if slices.Contains(ids, v.UNK()) {
			unk++
			continue
		}
		if v.Decode(ids) != p {
			t.Fatalf("paragraph %d does not round-trip", i)
		}
		exact++
	}
	t.Logf("K=2000: %d paragraphs round-trip exactly, %d hold UNK", exact, unk)
	if exact < 1000 || unk < 100 {
		t.Errorf("%d exact, %d with UNK", exact, unk)
	}
	// The next run (an evaluation, say) takes the saved mapping.
	c2 := loadOK(t, cfg)
	if c2.Vocab.Hash() != v.Hash() || c2.Vocab.Verify(v.Hash()) != nil {
		t.Error("vocab_file not reused")
	}
	cfg.VocabSize = 400
	if _, err := Load(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "vocab.json keeps 2000 tokens but data.vocab_size is 400") {
		t.Errorf("vocab_size mismatch: %v", err)
	}
	// A checkpoint trained on the full vocabulary is refused.
	if err := v.Verify(gpt2(t).Hash()); err == nil || !strings.Contains(err.Error(), "vocab.json") {
		t.Errorf("Verify: %v", err)
	}
}

func TestLoadRebuildsCorruptCache(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	cfg := DefaultConfig()
	cfg.Dir, cfg.CacheDir = t.TempDir(), t.TempDir()
	writeFile(t, cfg.Dir, "a.txt", "One paragraph.\n\nAnother one.\n\nA third.\n\nFour.\n")
	cfg.Train, cfg.DocSplit, cfg.Split = []string{"a.txt"}, "paragraph", []float64{0.5, 0.25, 0.25}
	c := loadOK(t, cfg)
	want := c.Train.Doc(0)
	files, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "tokens-*.bin"))
	c.Close()
	b, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], b[:len(b)-4], 0o644)
	c2 := loadOK(t, cfg)
	if !slices.Equal(c2.Train.Doc(0), want) {
		t.Error("rebuilt cache differs")
	}
	if !strings.Contains(logs.String(), "corrupt") || !strings.Contains(logs.String(), files[0]) {
		t.Errorf("no warning naming %s:\n%s", files[0], logs.String())
	}
}

func TestLoadBadInput(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "ok.txt", "fine text\n")
	writeFile(t, dir, "empty.txt", "")
	writeFile(t, dir, "bad.txt", "ok\nok\n\xc3\x28 bad\n")
	writeFile(t, dir, "one.txt", "a single document\n")
	for _, tc := range []struct {
		edit func(*Config)
		want []string
	}{
		{func(c *Config) { c.Train = []string{"nope.txt"} }, []string{"data.train", "nope.txt", "does not exist", "make data"}},
		{func(c *Config) { c.Train = []string{"empty.txt"} }, []string{"data.train", "empty.txt", "no documents"}},
		{func(c *Config) { c.Train = []string{"bad.txt"} }, []string{"data.train", "bad.txt:3", "invalid UTF-8"}},
		{func(c *Config) { c.Valid = []string{"gone.txt"} }, []string{"data.valid", "gone.txt"}},
		{func(c *Config) { c.Train = []string{"one.txt"} }, []string{"data.split", "1 document"}},
		{func(c *Config) { c.Pack = "foo" }, []string{`data.pack: "foo" is not one of wrap|pad`}},
	} {
		cfg := DefaultConfig()
		cfg.Dir, cfg.CacheDir, cfg.Train = dir, t.TempDir(), []string{"ok.txt"}
		cfg.Split = []float64{1, 0, 0}
		tc.edit(&cfg)
		if cfg.Train[0] == "one.txt" {
			cfg.Split = []float64{0.8, 0.1, 0.1}
		}
		_, err := Load(context.Background(), cfg)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v does not mention %q", err, w)
			}
		}
		// Nothing half-written is left in the cache.
		if m, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "*.tmp*")); len(m) > 0 {
			t.Errorf("temporary files left: %v", m)
		}
	}
}

// allSharedFiles is every corpus file of ../shared/data.
var allSharedFiles = []string{
	"lambada/lambada_test.jsonl", "lambada/lambada_test_plain_text.txt", "tinyshakespeare/input.txt",
	"warpeace/warpeace_input.txt", "wikitext-2/valid.txt", "wikitext-2/test.txt", "wikitext-2-raw/wiki.test.raw",
}

// Tokenising all of ../shared/data takes seconds; a second run maps the
// cache and is far faster (measured ratio is logged; at least 5x asserted).
func TestLoadAllSharedDataCached(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.CacheDir, cfg.Train = sharedData(t), t.TempDir(), allSharedFiles
	var bytes int64
	for _, f := range allSharedFiles {
		st, err := os.Stat(filepath.Join(cfg.Dir, f))
		if err != nil {
			t.Skip(err)
		}
		bytes += st.Size()
	}
	start := time.Now()
	c := loadOK(t, cfg)
	first := time.Since(start)
	n := c.Train.NumTokens() + c.Valid.NumTokens() + c.Test.NumTokens()
	c.Close()
	start = time.Now()
	c = loadOK(t, cfg)
	second := time.Since(start)
	t.Logf("all shared data: %.1f MB, %d tokens; first load %v (%.2f MB/s), cached load %v, ratio %.0fx",
		float64(bytes)/1e6, n, first.Round(time.Millisecond), float64(bytes)/1e6/first.Seconds(), second.Round(time.Microsecond), first.Seconds()/second.Seconds())
	if first > 60*time.Second {
		t.Errorf("first load took %v", first)
	}
	if first < 5*second {
		t.Errorf("cached load %v is not 5x faster than the first %v", second, first)
	}
}
