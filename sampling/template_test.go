package sampling

import (
	"slices"
	"strings"
	"testing"
)

// wordCodec is a toy tokenizer: every word with its leading space is one
// token, numbered in order of first appearance.
type wordCodec struct{ ids map[string]int }

func (w *wordCodec) encode(text string) []int {
	var out []int
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j] != ' ' {
			j++
		}
		piece := text[i:j]
		if _, ok := w.ids[piece]; !ok {
			w.ids[piece] = len(w.ids)
		}
		out = append(out, w.ids[piece])
		i = j
	}
	return out
}

func TestParseInfill(t *testing.T) {
	cases := []struct {
		text   string
		pieces []string // "" marks a position to generate
	}{
		{"She [MASK:4] the door and [MASK:5] into the dark.",
			[]string{"She", "", "", "", "", " the", " door", " and", "", "", "", "", "", " into", " the", " dark."}},
		{"[MASK:2] begins", []string{"", "", " begins"}},
		{"ends [MASK:1]", []string{"ends", ""}},
		{"a [MASK:1][MASK:2] b", []string{"a", "", "", "", " b"}},
	}
	for _, c := range cases {
		codec := &wordCodec{ids: map[string]int{}}
		got, err := ParseInfill(c.text, codec.encode)
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		want := Template{Tokens: make([]int, len(c.pieces)), Given: make([]bool, len(c.pieces))}
		for i, p := range c.pieces {
			if p != "" {
				want.Tokens[i], want.Given[i] = codec.ids[p], true
			}
		}
		if !slices.Equal(got.Tokens, want.Tokens) || !slices.Equal(got.Given, want.Given) {
			t.Errorf("%q:\n got %v %v\nwant %v %v", c.text, got.Tokens, got.Given, want.Tokens, want.Given)
		}
	}
}

func TestParseInfillErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"a [MASK:0] b", `infill: "[MASK:0]" at byte 2: want [MASK:k] with k >= 1`},
		{"a [MASK] b", `infill: "[MASK]" at byte 2: want [MASK:k] with k >= 1`},
		{"ab [MASK:x]", `infill: "[MASK:x]" at byte 3: want [MASK:k] with k >= 1`},
		{"a [MASK:3 b", `infill: unclosed "[MASK:3 b" at byte 2`},
		{"no spans", `infill: "no spans" has no [MASK:k] span`},
	}
	for _, c := range cases {
		_, err := ParseInfill(c.text, (&wordCodec{ids: map[string]int{}}).encode)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: got %v, want %s", c.text, err, c.want)
		}
	}
}

func TestPrefix(t *testing.T) {
	got, err := Prefix([]int{7, 8}, 4)
	if err != nil || !slices.Equal(got.Tokens, []int{7, 8, 0, 0}) || !slices.Equal(got.Given, []bool{true, true, false, false}) || got.NumGiven() != 2 {
		t.Errorf("Prefix = %+v, %v", got, err)
	}
	if _, err := Prefix([]int{1, 2, 3}, 2); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("Prefix longer than the sequence: %v", err)
	}
}
