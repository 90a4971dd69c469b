package data

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Train = []string{"x.txt"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with a train source: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Pack = "foo" }, `data.pack: "foo" is not one of wrap|pad`},
		{func(c *Config) { c.Train = nil }, "data.train: no sources given"},
		{func(c *Config) { c.Valid = []string{" "} }, "data.valid: entry 0 is empty"},
		{func(c *Config) { c.Format = "csv" }, `data.format: "csv" is not one of auto|text|jsonl|parquet`},
		{func(c *Config) { c.Detokenizer = "moses" }, `data.detokenizer: "moses" is not one of none|wikitext|ptb|lambada`},
		{func(c *Config) { c.DocSplit = "sentence" }, `data.doc_split: "sentence" is not one of`},
		{func(c *Config) { c.Split = []float64{0.5, 0.5} }, "data.split: want 3 fractions"},
		{func(c *Config) { c.Split = []float64{0.5, 0.2, 0.2} }, "data.split: fractions [0.5 0.2 0.2] sum to"},
		{func(c *Config) { c.Split = []float64{1.1, -0.1, 0} }, "data.split: fraction -0.1 is negative"},
		{func(c *Config) { c.SeqLen = 1 }, "data.seq_len: 1 is too small"},
		{func(c *Config) { c.VocabSize = 60000 }, "data.vocab_size: 60000 is outside 0..50256"},
		{func(c *Config) { c.TextField = "" }, "data.text_field: must not be empty"},
		{func(c *Config) { c.CacheDir = "" }, "data.cache_dir: must not be empty"},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	// All problems are reported together.
	c := ok
	c.Pack, c.SeqLen = "x", 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "data.pack") || !strings.Contains(err.Error(), "data.seq_len") {
		t.Errorf("joined errors: %v", err)
	}
	c = ok
	c.Detokenizer = "wikitext"
	if c.docSplit() != "article" || ok.docSplit() != "file" {
		t.Error("doc_split auto does not follow the detokenizer")
	}
	t.Setenv("DATA_DIR", "/somewhere")
	if ok.dir() != "/somewhere" || DefaultDir() != "/somewhere" {
		t.Error("DATA_DIR not honoured")
	}
}
