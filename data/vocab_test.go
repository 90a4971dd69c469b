package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGPT2KnownIDs(t *testing.T) {
	v := gpt2(t)
	for _, tc := range []struct {
		text string
		want []int
	}{
		{"Hello world", []int{15496, 995}},
		{" Hello world", []int{18435, 995}},
		{"The quick brown fox jumps over the lazy dog.", []int{464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13}},
		{"I'm fine, aren't you?", []int{40, 1101, 3734, 11, 3588, 470, 345, 30}},
		// EOS is appended as an id, never produced from text.
		{"<|endoftext|>", []int{27, 91, 437, 1659, 5239, 91, 29}},
		{"", nil},
	} {
		got := v.Encode(tc.text)
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
		if s := v.Decode(got); s != tc.text {
			t.Errorf("Decode(Encode(%q)) = %q", tc.text, s)
		}
	}
}

func TestGPT2VocabSpace(t *testing.T) {
	v := gpt2(t)
	if v.Size() != 50257 || v.MaskID() != 50257 || v.EOS() != 50256 || v.UNK() != -1 || v.Trimmed() {
		t.Fatalf("size/mask/eos/unk = %d/%d/%d/%d", v.Size(), v.MaskID(), v.EOS(), v.UNK())
	}
	if got := v.Decode([]int{15496, 50256, 50257, 50258, -1}); got != "Hello<|endoftext|><|mask|><|invalid|><|invalid|>" {
		t.Errorf("Decode specials = %q", got)
	}
	text := "naïve café, 日本語 — “quotes” 🙂\n\n  spaces\ttab"
	if got := v.Decode(v.Encode(text)); got != text {
		t.Errorf("round trip = %q", got)
	}
	// Piecewise decoding joins to the whole, even inside a multi-byte rune.
	ids := v.Encode("🙂")
	if len(ids) < 2 || v.Decode(ids[:1])+v.Decode(ids[1:]) != "🙂" {
		t.Errorf("piecewise decode of %v failed", ids)
	}
	if v.Hash() != gpt2(t).Hash() || len(v.Hash()) != 16 {
		t.Errorf("hash %q not stable", v.Hash())
	}
}

func trimmedFixture(t *testing.T) (*Vocab, string) {
	t.Helper()
	g := gpt2(t)
	corpus := "the cat sat on the mat. the dog sat on the log."
	counts := make([]int64, gpt2Size)
	for _, id := range g.Encode(corpus) {
		counts[id]++
	}
	v, err := TrimVocab(counts, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return v, corpus
}

func TestTrimmedVocab(t *testing.T) {
	v, corpus := trimmedFixture(t)
	g := gpt2(t)
	distinct := map[int]bool{}
	for _, id := range g.Encode(corpus) {
		distinct[id] = true
	}
	K := len(distinct)
	if v.Size() != K+2 || v.EOS() != K || v.UNK() != K+1 || v.MaskID() != K+2 || !v.Trimmed() {
		t.Fatalf("K=%d: size/eos/unk/mask = %d/%d/%d/%d", K, v.Size(), v.EOS(), v.UNK(), v.MaskID())
	}
	// " the" is the most frequent token, so it gets id 0.
	if ids := v.Encode(" the"); !slices.Equal(ids, []int{0}) {
		t.Errorf(`Encode(" the") = %v, want [0]`, ids)
	}
	for _, s := range []string{corpus, " the dog sat on the cat.", "the log"} {
		if got := v.Decode(v.Encode(s)); got != s {
			t.Errorf("in-vocabulary round trip %q -> %q", s, got)
		}
	}
	ids := v.Encode("the zebra sat")
	if !slices.Contains(ids, v.UNK()) {
		t.Errorf("OOV word gave %v, want UNK %d among them", ids, v.UNK())
	}
	if got := v.Decode(ids); !strings.Contains(got, "<|unk|>") || !strings.HasPrefix(got, "the") {
		t.Errorf("Decode with UNK = %q", got)
	}
	if v.Hash() == g.Hash() {
		t.Error("trimmed and full vocabularies share a hash")
	}
}

func TestVocabSaveLoadVerify(t *testing.T) {
	v, corpus := trimmedFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "vocab.json")
	if err := v.Save(path); err != nil {
		t.Fatal(err)
	}
	w, err := LoadVocab(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Hash() != v.Hash() || !slices.Equal(w.Encode(corpus), v.Encode(corpus)) || w.Verify(v.Hash()) != nil {
		t.Fatal("loaded vocabulary differs")
	}
	full := gpt2(t)
	err = full.Verify(v.Hash())
	if err == nil || !strings.Contains(err.Error(), v.Hash()) || !strings.Contains(err.Error(), full.Hash()) {
		t.Errorf("Verify mismatch error = %v", err)
	}
	err = w.Verify(full.Hash())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Verify error should name the vocabulary file: %v", err)
	}

	// A full vocabulary saves and loads too.
	fp := filepath.Join(dir, "full.json")
	if err := full.Save(fp); err != nil {
		t.Fatal(err)
	}
	if f, err := LoadVocab(fp); err != nil || f.Hash() != full.Hash() || f.Trimmed() {
		t.Fatalf("full vocab reload: %v", err)
	}

	// Bad files: each error names the file.
	var m map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func(map[string]any)) string {
		c := map[string]any{}
		for k, x := range m {
			c[k] = x
		}
		f(c)
		out, _ := json.Marshal(c)
		return writeFile(t, dir, name, string(out))
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.json"), "nope.json"},
		{"not json", writeFile(t, dir, "garbage.json", "{"), "garbage.json"},
		{"edited ids", edit("edited.json", func(c map[string]any) {
			ids := c["gpt2_ids"].([]any)
			ids[0], ids[1] = ids[1], ids[0]
		}), "does not match its content"},
		{"future version", edit("v2.json", func(c map[string]any) { c["version"] = 2 }), "version 2 is not supported"},
		{"wrong size", edit("size.json", func(c map[string]any) { c["size"] = 7 }), "size.json"},
		{"other format", edit("fmt.json", func(c map[string]any) { c["format"] = "x" }), "fmt.json"},
	} {
		_, err := LoadVocab(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: LoadVocab error = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestTrimVocabErrors(t *testing.T) {
	if _, err := TrimVocab(make([]int64, gpt2Size), 0); err == nil {
		t.Error("k=0 accepted")
	}
	if _, err := TrimVocab(make([]int64, 10), 5); err == nil {
		t.Error("short counts accepted")
	}
	counts := make([]int64, gpt2Size)
	counts[5], counts[7], counts[9], counts[gpt2EOS] = 3, 3, 10, 100
	v, err := TrimVocab(counts, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Most frequent first, ties to the smaller id; EOS is not a candidate.
	if !slices.Equal(v.keep, []int32{9, 5}) {
		t.Errorf("kept %v, want [9 5]", v.keep)
	}
}
