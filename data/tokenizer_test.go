package data

import (
	"context"
	"errors"
	"iter"
	"os"
	"slices"
	"strings"
	"testing"
)

// Cutting at safe points changes nothing: the chunks' ids joined equal the
// ids of the whole text.
func TestSplitChunksExact(t *testing.T) {
	v := gpt2(t)
	b, err := os.ReadFile(sharedFile(t, "tinyshakespeare/input.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b[:300_000])
	chunks := splitChunks(text, 2000)
	if len(chunks) < 100 || strings.Join(chunks, "") != text {
		t.Fatalf("%d chunks, or they do not join to the text", len(chunks))
	}
	var joined []int32
	for _, c := range chunks {
		joined = v.encodeBase(joined, c)
	}
	if whole := v.encodeBase(nil, text); !slices.Equal(joined, whole) {
		t.Fatalf("chunked encoding differs: %d vs %d ids", len(joined), len(whole))
	}
	// Tricky boundaries are not cut.
	for _, s := range []string{"a  \nb", "a\n b", "a\n\nb", "a\n", "é\nb"} {
		for i := range len(s) {
			if safeCut(s, i) {
				t.Errorf("safeCut(%q, %d)", s, i)
			}
		}
	}
	if !safeCut("a.\nB", 3) {
		t.Error(`safeCut("a.\nB", 3) = false`)
	}
}

type memSource struct {
	name string
	docs []string
	err  error // returned after the docs
}

func (m *memSource) Name() string        { return m.name }
func (m *memSource) Fingerprint() string { return m.name }
func (m *memSource) Docs(context.Context) iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		for _, d := range m.docs {
			if !yield(Doc{Text: d, Origin: m.name}, nil) {
				return
			}
		}
		if m.err != nil {
			yield(Doc{}, m.err)
		}
	}
}

// The parallel pipeline returns documents in order, each equal to its own
// encoding, across sources.
func TestTokenizeOrder(t *testing.T) {
	v := gpt2(t)
	var docs []string
	for i := range 3000 {
		docs = append(docs, strings.Repeat("word ", i%50)+"end.\nNext line "+string(rune('a'+i%26)))
	}
	big := strings.Repeat("A long line of text.\nAnd another one.\n", 20000) // chunked inside
	srcs := []Source{&memSource{name: "a", docs: docs[:1000]}, &memSource{name: "b", docs: append([]string{big}, docs[1000:]...)}}
	want := append(slices.Clone(docs[:1000]), big)
	want = append(want, docs[1000:]...)
	var got [][]int32
	var cur []int32
	err := tokenize(context.Background(), v, srcs, func(s string) string { return s }, func(ids []int32, end bool) error {
		cur = append(cur, ids...)
		if end {
			got, cur = append(got, cur), nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d documents, want %d", len(got), len(want))
	}
	for i, w := range want {
		if !slices.Equal(got[i], v.encodeBase(nil, w)) {
			t.Fatalf("document %d differs", i)
		}
	}
	// Errors from a source and from emit stop the pipeline and surface.
	boom := errors.New("boom")
	err = tokenize(context.Background(), v, []Source{&memSource{docs: docs, err: boom}}, func(s string) string { return s },
		func([]int32, bool) error { return nil })
	if !errors.Is(err, boom) {
		t.Errorf("source error = %v", err)
	}
	stop := errors.New("disk full")
	err = tokenize(context.Background(), v, srcs, func(s string) string { return s },
		func([]int32, bool) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("emit error = %v", err)
	}
}
