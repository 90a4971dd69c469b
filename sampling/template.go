package sampling

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Template fixes some positions of the sequences a sampler generates:
// where Given[i] is true, position i is Tokens[i] from the first step to
// the last; the sampler moves only the other positions, seeing the given
// tokens on both sides (the autoregressive sampler sees only the left).
type Template struct {
	Tokens []int
	Given  []bool
}

// NumGiven counts the given positions.
func (t Template) NumGiven() int {
	n := 0
	for _, g := range t.Given {
		if g {
			n++
		}
	}
	return n
}

// Prefix is prefix-conditioned generation: the prompt followed by
// length−len(prompt) positions to generate.
func Prefix(prompt []int, length int) (Template, error) {
	if len(prompt) > length {
		return Template{}, fmt.Errorf("prefix of %d tokens does not fit a sequence of %d", len(prompt), length)
	}
	t := Template{Tokens: make([]int, length), Given: make([]bool, length)}
	for i, tok := range prompt {
		t.Tokens[i], t.Given[i] = tok, true
	}
	return t, nil
}

// maxInfillTokens bounds the masked positions of a template: far beyond
// any sequence a model samples, and a guard against "[MASK:999999999]"
// allocating gigabytes.
const maxInfillTokens = 1 << 16

// ParseInfill reads an infilling prompt such as
//
//	She [MASK:4] the door and [MASK:5] into the dark.
//
// in which [MASK:k] stands for k tokens to generate and the text between
// the spans is encoded with encode (the tokenizer, e.g. data.Vocab.Encode).
// Spaces just before a span are dropped: in GPT-2's BPE a word carries its
// leading space, so "She" + " closed" is how the text would have been
// encoded, while "She " would end in a lone space token. At most
// maxInfillTokens positions may be masked.
func ParseInfill(text string, encode func(string) []int) (Template, error) {
	var t Template
	masked := 0
	add := func(segment string) {
		for _, tok := range encode(segment) {
			t.Tokens = append(t.Tokens, tok)
			t.Given = append(t.Given, true)
		}
	}
	rest, offset := text, 0
	for {
		i := strings.Index(rest, "[MASK")
		if i < 0 {
			break
		}
		end := strings.IndexByte(rest[i:], ']')
		if end < 0 {
			return Template{}, fmt.Errorf("infill: unclosed %q at byte %d", rest[i:], offset+i)
		}
		span := rest[i : i+end+1]
		k, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(span, "[MASK:"), "]"))
		if !strings.HasPrefix(span, "[MASK:") || err != nil || k < 1 {
			return Template{}, fmt.Errorf("infill: %q at byte %d: want [MASK:k] with k >= 1", span, offset+i)
		}
		if masked += k; masked > maxInfillTokens {
			return Template{}, fmt.Errorf("infill: %q at byte %d: more than %d masked positions in all", span, offset+i, maxInfillTokens)
		}
		add(strings.TrimRight(rest[:i], " "))
		for range k {
			t.Tokens = append(t.Tokens, 0)
			t.Given = append(t.Given, false)
		}
		rest, offset = rest[i+end+1:], offset+i+end+1
	}
	add(rest)
	if t.NumGiven() == len(t.Tokens) {
		return Template{}, fmt.Errorf("infill: %q has no [MASK:k] span", text)
	}
	return t, nil
}

// tensors are the template repeated for a batch of b: given [B,L] bool and
// tokens [B,L] int64 (pending where not given).
func (t Template) tensors(b, pending int, device gotch.Device) (given, tokens *ts.Tensor) {
	l := len(t.Tokens)
	g := make([]bool, 0, b*l)
	toks := make([]int64, 0, b*l)
	for range b {
		for i, tok := range t.Tokens {
			g = append(g, t.Given[i])
			if !t.Given[i] {
				tok = pending
			}
			toks = append(toks, int64(tok))
		}
	}
	shape := []int64{int64(b), int64(l)}
	given = ts.MustOfSlice(g).MustView(shape, true).MustTo(device, true)
	tokens = ts.MustOfSlice(toks).MustView(shape, true).MustTo(device, true)
	return given, tokens
}
