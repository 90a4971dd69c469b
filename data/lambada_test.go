package data

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLambada(t *testing.T) {
	v := gpt2(t)
	exs, err := LoadLambada(sharedFile(t, "lambada/lambada_test.jsonl"), v)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 5153 {
		t.Fatalf("%d passages, want 5153", len(exs))
	}
	for _, tc := range []struct {
		i       int
		target  string
		ctxTail string
	}{
		{0, "signs", "I don't care about"},
		{1, "Shane", "on my own,"},
		{2, "insurance", "you don't have any"},
		{426, "Power", "some kind of\n\n"}, // newline, not a space, before the word
		{1053, "\u201cSal", "be\u2013\u201d\n"},
		{5152, "Grandmother", "the rules,"},
	} {
		ex := exs[tc.i]
		if ex.Target != tc.target || !strings.HasSuffix(ex.Context, tc.ctxTail) {
			t.Errorf("passage %d: target %q context ...%q", tc.i, ex.Target, ex.Context[max(0, len(ex.Context)-30):])
		}
	}
	// " signs" is one GPT-2 token.
	if !slices.Equal(exs[0].TargetIDs, v.Encode(" signs")) || len(exs[0].TargetIDs) != 1 {
		t.Errorf("passage 0 target ids %v", exs[0].TargetIDs)
	}
	var unstable []int
	for i, ex := range exs {
		full := v.Encode(ex.Text)
		if !slices.Equal(append(slices.Clone(ex.ContextIDs), ex.TargetIDs...), full) {
			t.Fatalf("passage %d: context+target ids are not the passage's ids", i)
		}
		if !strings.HasPrefix(ex.Text, ex.Context) || !strings.HasSuffix(v.Decode(ex.TargetIDs), ex.Target) ||
			v.Decode(ex.ContextIDs) != ex.Context || len(ex.TargetIDs) == 0 {
			t.Fatalf("passage %d: spans do not match the text", i)
		}
		if !slices.Equal(v.Encode(ex.Context), ex.ContextIDs) {
			unstable = append(unstable, i)
		}
	}
	// Tokenising the context alone gives the same ids except where "\n\n"
	// precedes the word: before a word GPT-2 splits it [198 198], at the end
	// of a text it is one token [628]. Hence ContextIDs come from the whole
	// passage.
	if !slices.Equal(unstable, []int{426, 3977, 4462}) {
		t.Errorf("Encode(Context) != ContextIDs for passages %v", unstable)
	}
	if !slices.Equal(exs[426].ContextIDs[len(exs[426].ContextIDs)-2:], []int{198, 198}) {
		t.Errorf("passage 426 context ends %v", exs[426].ContextIDs[len(exs[426].ContextIDs)-2:])
	}
}

func TestLambadaBadInput(t *testing.T) {
	dir := t.TempDir()
	v := gpt2(t)
	for _, tc := range []struct{ name, content, want string }{
		{"nofield.jsonl", `{"text": "a b c"}` + "\n" + `{"passage": "x y"}` + "\n", "nofield.jsonl:2"},
		{"oneword.jsonl", `{"text": "lonely"}` + "\n", "oneword.jsonl:1"},
	} {
		_, err := LoadLambada(writeFile(t, dir, tc.name, tc.content), v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to name %s", tc.name, err, tc.want)
		}
	}
	if _, err := LoadLambada(filepath.Join(dir, "absent.jsonl"), v); err == nil || !strings.Contains(err.Error(), "absent.jsonl") {
		t.Errorf("missing file: %v", err)
	}
}
