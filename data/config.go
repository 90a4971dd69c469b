package data

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Config is the `data:` section of a run configuration. Keys are snake_case
// (mapstructure tags) so that the strict viper loader can embed it as is.
type Config struct {
	// Dir is the data folder against which relative paths in Train, Valid
	// and Test are resolved. Empty means $DATA_DIR, or "datasets" (the
	// folder `make data` fills) when that is unset.
	Dir string `mapstructure:"dir"`
	// Train lists the training sources: files, folders (read recursively,
	// in name order), globs, or hf://datasets/OWNER/NAME[@REV][/path] URLs.
	Train []string `mapstructure:"train"`
	// Valid and Test list separate sources per split. When both are empty
	// the train corpus is split by document with Split.
	Valid []string `mapstructure:"valid"`
	Test  []string `mapstructure:"test"`
	// Format is auto|text|jsonl|parquet. auto decides by extension (.jsonl,
	// .json, .parquet, hf:// = parquet, else text; a .gz suffix is looked
	// through).
	Format string `mapstructure:"format"`
	// TextField is the JSON field or parquet column holding the text.
	TextField string `mapstructure:"text_field"`
	// Detokenizer undoes the tokenisation of pre-tokenised corpora before
	// GPT-2 BPE: none|wikitext|ptb|lambada (MDLM's detokenizers).
	Detokenizer string `mapstructure:"detokenizer"`
	// Tokenizer is gpt2 (GPT-2 BPE, optionally trimmed by VocabSize), char
	// (text8's 27 symbols; needs Normalize text8) or bytes (256 byte values,
	// for raw text). The vocabulary file records it.
	Tokenizer string `mapstructure:"tokenizer"`
	// Normalize rewrites every text after the detokenizer and before the
	// tokenizer: none, or text8 (lowercase; a–z kept, everything else one
	// space, runs of spaces collapsed). It applies to every corpus a run
	// reads (zero-shot, LAMBADA, infill prompts too). Default: text8 for
	// char, none otherwise.
	Normalize string `mapstructure:"normalize"`
	// DocSplit says where documents begin in plain-text files:
	// auto|file|paragraph|line|article. article splits WikiText on its
	// top-level " = Title = " headings; auto means article when Detokenizer
	// is wikitext and file otherwise. JSON lines and parquet rows are always
	// one document each. file holds a whole file in memory as one
	// document; the other modes stream, for text files of any size.
	DocSplit string `mapstructure:"doc_split"`
	// Split holds the train/valid/test fractions used to split the train
	// corpus by document (seeded by Seed) when Valid and Test are empty.
	Split []float64 `mapstructure:"split"`
	// SeqLen is L, the block length in tokens.
	SeqLen int `mapstructure:"seq_len"`
	// Pack is wrap (documents joined with EOS and cut into blocks of L, as
	// MDLM does) or pad (one document per block, pad positions masked out of
	// the loss; documents longer than L continue in further blocks).
	Pack string `mapstructure:"pack"`
	// BOS prepends EOS as a beginning-of-document marker (GPT-2 has no BOS;
	// MDLM uses EOS in that role).
	BOS bool `mapstructure:"bos"`
	// VocabSize is 0 for the full GPT-2 vocabulary, or K > 0 to keep the K
	// most frequent ids of the training split plus EOS and UNK. It applies
	// to the gpt2 tokenizer only: char and bytes have fixed vocabularies and
	// say at start-up that they ignore it (the built-in default sets 4096).
	VocabSize int `mapstructure:"vocab_size"`
	// VocabFile, when set and present, is the vocabulary mapping to use (for
	// example the one saved next to a checkpoint); when set and absent, the
	// mapping built from the corpus is saved there.
	VocabFile string `mapstructure:"vocab_file"`
	// CacheDir holds the tokenised corpora and vocabulary mappings.
	CacheDir string `mapstructure:"cache_dir"`
	// Seed drives the document split and the shuffling of blocks.
	Seed uint64 `mapstructure:"seed"`
	// HFEndpoint overrides the Hugging Face base URL (else $HF_ENDPOINT,
	// else https://huggingface.co).
	HFEndpoint string `mapstructure:"hf_endpoint"`
}

// DefaultConfig returns CPU-sized defaults; only Train must be added.
func DefaultConfig() Config {
	return Config{
		Format:      "auto",
		TextField:   "text",
		Detokenizer: "none",
		Tokenizer:   TokGPT2,
		DocSplit:    "auto",
		Split:       []float64{0.9, 0.05, 0.05},
		SeqLen:      128,
		Pack:        "wrap",
		CacheDir:    ".cache",
		Seed:        1,
	}
}

// DefaultDir is the data folder used when Config.Dir is empty: $DATA_DIR;
// else ./datasets (where `make data` writes) when it exists; else
// ../shared/data (a team checkout beside the repository) when it exists;
// else "datasets", so that errors point at `make data`. Runs record the
// resolved path in their logs.
func DefaultDir() string {
	if d := os.Getenv("DATA_DIR"); d != "" {
		return d
	}
	for _, d := range []string{"datasets", filepath.Join("..", "shared", "data")} {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return "datasets"
}

var (
	formats      = []string{"auto", "text", "jsonl", "parquet"}
	detokenizers = []string{"none", "wikitext", "ptb", "lambada"}
	docSplits    = []string{"auto", "file", "paragraph", "line", "article"}
	packModes    = []string{"wrap", "pad"}
)

// Validate checks every key and reports all problems at once; each message
// names its key as data.KEY.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("data.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	oneOf := func(key, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			bad(key, "%q is not one of %s", v, strings.Join(allowed, "|"))
		}
	}
	if len(c.Train) == 0 {
		bad("train", "no sources given")
	}
	for _, k := range []struct {
		key  string
		list []string
	}{{"train", c.Train}, {"valid", c.Valid}, {"test", c.Test}} {
		for i, s := range k.list {
			if strings.TrimSpace(s) == "" {
				bad(k.key, "entry %d is empty", i)
			}
		}
	}
	oneOf("format", c.Format, formats)
	oneOf("detokenizer", c.Detokenizer, detokenizers)
	oneOf("doc_split", c.DocSplit, docSplits)
	oneOf("tokenizer", c.Tokenizer, tokenizers)
	if c.Normalize != "" {
		oneOf("normalize", c.Normalize, normalizations)
	}
	if c.Tokenizer == TokChar && c.normalize() != NormText8 {
		bad("normalize", "tokenizer char needs normalize: text8 (its 27 symbols are what text8 keeps), got %q; use tokenizer: bytes for raw text", c.Normalize)
	}

	oneOf("pack", c.Pack, packModes)
	if c.TextField == "" {
		bad("text_field", "must not be empty")
	}
	if len(c.Split) != 3 {
		bad("split", "want 3 fractions [train, valid, test], got %d", len(c.Split))
	} else {
		sum := 0.0
		for _, f := range c.Split {
			if f < 0 || math.IsNaN(f) {
				bad("split", "fraction %v is negative", f)
			}
			sum += f
		}
		if math.Abs(sum-1) > 1e-6 {
			bad("split", "fractions %v sum to %v, not 1", c.Split, sum)
		}
		if c.Split[0] <= 0 {
			bad("split", "train fraction must be positive")
		}
	}
	if c.SeqLen < 2 {
		bad("seq_len", "%d is too small (need at least 2)", c.SeqLen)
	}
	if c.VocabSize < 0 || c.VocabSize > gpt2Size-1 {
		bad("vocab_size", "%d is outside 0..%d", c.VocabSize, gpt2Size-1)
	}
	if c.CacheDir == "" {
		bad("cache_dir", "must not be empty")
	}
	return errors.Join(errs...)
}

// normalize resolves "" (text8 for char, none otherwise).
func (c Config) normalize() string {
	switch {
	case c.Normalize != "":
		return c.Normalize
	case c.Tokenizer == TokChar:
		return NormText8
	}
	return NormNone
}

// docSplit resolves "auto".
func (c Config) docSplit() string {
	if c.DocSplit != "auto" {
		return c.DocSplit
	}
	if c.Detokenizer == "wikitext" {
		return "article"
	}
	return "file"
}

func (c Config) dir() string {
	if c.Dir != "" {
		return c.Dir
	}
	return DefaultDir()
}
