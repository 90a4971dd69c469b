package data

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestText8Normalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"Hello, World!", "hello world"},
		{"  War and\n\nPeace  ", "war and peace"},
		{"It's 1805 -- Anna Pávlovna", "it s anna p vlovna"},
		{"ÉCOLE", "cole"},
		{"a\tb\r\nc", "a b c"},
		{"!!!", ""},
		{"x", "x"},
		{"ABCxyz", "abcxyz"},
		{"über-cool", "ber cool"},
	} {
		if got := Text8Normalize(c.in); got != c.want {
			t.Errorf("Text8Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func newVocab(t *testing.T, tok, norm string) *Vocab {
	t.Helper()
	v, err := NewVocab(tok, norm)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCharVocab(t *testing.T) {
	v := newVocab(t, TokChar, NormText8)
	if v.Size() != 28 || v.EOS() != 27 || v.MaskID() != 28 || v.UNK() != -1 || v.Trimmed() {
		t.Fatalf("size/eos/mask/unk %d/%d/%d/%d", v.Size(), v.EOS(), v.MaskID(), v.UNK())
	}
	ids := v.Encode("The cat, sat!")
	if want := []int{20, 8, 5, 0, 3, 1, 20, 0, 19, 1, 20}; !slices.Equal(ids, want) {
		t.Fatalf("Encode = %v, want %v", ids, want)
	}
	if got := v.Decode(ids); got != "the cat sat" {
		t.Errorf("Decode = %q", got)
	}
	if got := v.Decode([]int{1, 27, 2, 28}); got != "a<|endoftext|>b<|mask|>" {
		t.Errorf("Decode with EOS and MASK = %q", got)
	}
	// Every id below EOS round-trips.
	all := make([]int, 27)
	for i := range all {
		all[i] = i
	}
	if got := v.Encode(v.Decode(all[1:])); !slices.Equal(got, all[1:]) {
		t.Errorf("round trip of a..z: %v", got)
	}
	bl := v.ByteLens()
	if len(bl) != 29 || bl[0] != 1 || bl[26] != 1 || bl[27] != 0 || bl[28] != 0 {
		t.Errorf("byte lengths %v", bl)
	}
	if _, err := NewVocab(TokChar, NormNone); err == nil || !strings.Contains(err.Error(), "normalize: text8") {
		t.Errorf("char without text8: %v", err)
	}
}

func TestBytesVocab(t *testing.T) {
	v := newVocab(t, TokBytes, NormNone)
	if v.Size() != 257 || v.EOS() != 256 || v.UNK() != -1 {
		t.Fatalf("size/eos %d/%d", v.Size(), v.EOS())
	}
	text := "Pávlovna\n"
	ids := v.Encode(text)
	if len(ids) != len(text) || ids[1] != 0xc3 || ids[2] != 0xa1 {
		t.Fatalf("Encode = %v", ids)
	}
	if v.Decode(ids) != text {
		t.Errorf("Decode = %q", v.Decode(ids))
	}
	if bl := v.ByteLens(); bl[0] != 1 || bl[255] != 1 || bl[256] != 0 {
		t.Errorf("byte lengths wrong")
	}
}

func TestVocabFileRecordsTokenizer(t *testing.T) {
	dir := t.TempDir()
	hashes := map[string]bool{}
	for _, c := range []struct{ tok, norm string }{
		{TokChar, NormText8}, {TokBytes, NormNone}, {TokBytes, NormText8}, {TokGPT2, NormText8}, {TokGPT2, NormNone},
	} {
		v := newVocab(t, c.tok, c.norm)
		hashes[v.Hash()] = true
		p := filepath.Join(dir, c.tok+"-"+c.norm+".json")
		if err := v.Save(p); err != nil {
			t.Fatal(err)
		}
		w, err := LoadVocab(p)
		if err != nil {
			t.Fatal(err)
		}
		if w.Tokenizer() != c.tok || w.Normalization() != c.norm || w.Hash() != v.Hash() || w.Size() != v.Size() {
			t.Errorf("%s/%s: loaded %s/%s hash %s size %d", c.tok, c.norm, w.Tokenizer(), w.Normalization(), w.Hash(), w.Size())
		}
	}
	if len(hashes) != 5 {
		t.Errorf("tokenizer or normalisation missing from the hash: %d distinct of 5", len(hashes))
	}
	// The plain GPT-2 hash is the one earlier versions wrote (caches and
	// checkpoints keyed by it stay valid).
	if h := newVocab(t, TokGPT2, NormNone).Hash(); h != gpt2(t).Hash() {
		t.Errorf("gpt2 hash changed: %s vs %s", h, gpt2(t).Hash())
	}
}

func TestTrimmedUNKBytes(t *testing.T) {
	counts := make([]int64, gpt2Size)
	// " the" (id 262, 4 bytes) kept; "," (11, 1 byte) ×3 and " cat" (3797, 4
	// bytes) ×1 dropped: an UNK stands for (3·1 + 1·4)/4 = 1.75 bytes.
	counts[262], counts[11], counts[3797] = 10, 3, 1
	v, err := TrimVocab(counts, 1)
	if err != nil {
		t.Fatal(err)
	}
	bl := v.ByteLens()
	if bl[0] != 4 || bl[v.EOS()] != 0 || bl[v.UNK()] != 1.75 {
		t.Fatalf("byte lengths %v", bl)
	}
	p := filepath.Join(t.TempDir(), "v.json")
	if err := v.Save(p); err != nil {
		t.Fatal(err)
	}
	w, err := LoadVocab(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.ByteLens()[w.UNK()]; got != 1.75 {
		t.Errorf("UNK bytes after load %v", got)
	}
	all, _ := TrimVocab(counts, 5) // nothing dropped: unknown
	if !math.IsNaN(all.ByteLens()[all.UNK()]) {
		t.Errorf("UNK bytes with nothing dropped: %v", all.ByteLens()[all.UNK()])
	}
}

// TestLoadCharCorpus: a char-level corpus holds exactly the normalised
// text of each document, in its own cache file, and LAMBADA passages cut
// at the target's leading space.
func TestLoadCharCorpus(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "Hello, World!\n\nA second -- paragraph.\n\n12 34\n")
	cfg := DefaultConfig()
	cfg.Dir, cfg.CacheDir = dir, t.TempDir()
	cfg.Train, cfg.DocSplit, cfg.Split, cfg.SeqLen = []string{"a.txt"}, "paragraph", []float64{1, 0, 0}, 8
	cfg.Tokenizer = TokChar
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c := loadOK(t, cfg)
	if c.Vocab.Tokenizer() != TokChar || c.Vocab.Size() != 28 {
		t.Fatalf("vocab %s V=%d", c.Vocab.Tokenizer(), c.Vocab.Size())
	}
	var docs []string
	for i := range c.Train.NumDocs() {
		docs = append(docs, c.Vocab.Decode(c.Train.Doc(i)))
	}
	if want := []string{"hello world", "a second paragraph", ""}; !slices.Equal(docs, want) {
		t.Errorf("docs %q, want %q", docs, want)
	}
	cfg.Tokenizer = TokBytes
	cfg.Normalize = NormNone
	b := loadOK(t, cfg)
	if got := b.Vocab.Decode(b.Train.Doc(0)); got != "Hello, World!" {
		t.Errorf("bytes doc 0 = %q", got)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.CacheDir, "tokens-*.bin"))
	if len(files) != 2 {
		t.Errorf("tokenizer not in the cache key: %v", files)
	}
	ex, err := lambadaExample("He said, \"Go home, Lucy!\"", c.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Target != "lucy" || c.Vocab.Decode(ex.ContextIDs) != "he said go home" || c.Vocab.Decode(ex.TargetIDs) != " lucy" {
		t.Errorf("lambada cut: target %q context %q target ids %q", ex.Target, c.Vocab.Decode(ex.ContextIDs), c.Vocab.Decode(ex.TargetIDs))
	}
}

func TestCharConfigErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Train = []string{"x.txt"}
	cfg.Tokenizer, cfg.Normalize = TokChar, NormNone
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "data.normalize") {
		t.Errorf("char + none: %v", err)
	}
	cfg.Tokenizer, cfg.Normalize = "words", ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "data.tokenizer") {
		t.Errorf("unknown tokenizer: %v", err)
	}
	cfg.Tokenizer, cfg.Normalize = TokGPT2, "lower"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "data.normalize") {
		t.Errorf("unknown normalisation: %v", err)
	}
}
