package data

import (
	"fmt"
	"strings"
)

// Normalisations (data.normalize) rewrite text before it is tokenised.
const (
	NormNone  = "none"
	NormText8 = "text8"
)

var normalizations = []string{NormNone, NormText8}

// text8Alphabet is the 27 symbols text8 keeps, in id order: the space, then
// a–z. A character-level vocabulary numbers them 0..26.
const text8Alphabet = " abcdefghijklmnopqrstuvwxyz"

// normalizer returns the named normalisation.
func normalizer(name string) (func(string) string, error) {
	switch name {
	case "", NormNone:
		return nil, nil
	case NormText8:
		return Text8Normalize, nil
	}
	return nil, fmt.Errorf("unknown normalisation %q (want one of %s)", name, strings.Join(normalizations, "|"))
}

// Text8Normalize is text8's normalisation of a document (Mahoney's wikifil
// without its Wikipedia markup rules): ASCII letters lowercased and kept,
// every other character (digits, punctuation, newlines, any non-ASCII rune
// as one unit) turned into a space, runs of spaces collapsed to one. Spaces
// at the two ends are dropped: documents are separated by EOS, so an edge
// space carries no information and would only be a free token to predict.
// The result holds only the 27 symbols of text8Alphabet.
func Text8Normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false // a space is pending
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		default:
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
