package data

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// GPT-2's pre-tokeniser, hand-written. The tiktoken codec splits text with
// the pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (with Go's unicode.IsSpace for \s, as its compiled matcher does) and then
// runs BPE within each piece. Splitting here lets an encoder memoise the
// BPE of repeated pieces (words recur: most pieces of a corpus were seen
// before), which is where most of the time went. A piece encoded on its
// own gives the same ids as inside the text, since the pattern matches
// every piece whole; TestPretokMatchesCodec checks the split against the
// codec on all of ../shared/data.

type runeClass uint8

const (
	classSpace runeClass = iota
	classLetter
	classNumber
	classOther
)

func classOf(r rune) runeClass {
	switch {
	case r < utf8.RuneSelf:
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			return classLetter
		case r >= '0' && r <= '9':
			return classNumber
		case r == ' ' || r >= '\t' && r <= '\r':
			return classSpace
		}
		return classOther
	case unicode.IsSpace(r):
		return classSpace
	case unicode.In(r, unicode.L):
		return classLetter
	case unicode.In(r, unicode.N):
		return classNumber
	}
	return classOther
}

// nextPiece returns the length in bytes of the piece at the start of s
// (s non-empty, valid UTF-8).
func nextPiece(s string) int {
	if s[0] == '\'' && len(s) >= 2 {
		switch s[1] {
		case 's', 't', 'm', 'd':
			return 2
		case 'r', 'v':
			if len(s) >= 3 && s[2] == 'e' {
				return 3
			}
		case 'l':
			if len(s) >= 3 && s[2] == 'l' {
				return 3
			}
		}
	}
	r, n := utf8.DecodeRuneInString(s)
	c := classOf(r)
	start := 0
	if r == ' ' && len(s) > 1 {
		r2, _ := utf8.DecodeRuneInString(s[1:])
		if c2 := classOf(r2); c2 != classSpace {
			c, start = c2, 1 // " ?X+": the space joins the run
		}
	}
	if c != classSpace {
		i := start
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if classOf(r) != c {
				break
			}
			i += n
		}
		return i
	}
	// Whitespace: \s+(?!\S) takes the run, but leaves its last rune to the
	// next piece when a non-space follows; a single rune is taken by \s+.
	i, last := n, 0
	for i < len(s) {
		r, m := utf8.DecodeRuneInString(s[i:])
		if classOf(r) != classSpace {
			if last > 0 {
				return last
			}
			return i
		}
		last = i
		i += m
	}
	return i
}

// encoder encodes text piece by piece, remembering the ids of pieces it
// has seen. It is not safe for concurrent use: each goroutine owns one.
type encoder struct {
	v    *Vocab
	memo map[string][]int32
}

const memoLimit = 1 << 17 // pieces remembered before the memo is reset

// textEncoder appends the base ids of a text to dst (see Vocab.encodeBase).
type textEncoder interface {
	append(dst []int32, text string) []int32
}

func (v *Vocab) newEncoder() textEncoder {
	switch v.base {
	case TokChar:
		return charEncoder{}
	case TokBytes:
		return byteEncoder{}
	}
	return &encoder{v: v, memo: map[string][]int32{}}
}

// charEncoder maps text8-normalised text to ids 0..26 (text8Alphabet); a
// byte outside that alphabet (only for text that skipped normalisation)
// becomes the space, as normalisation would have made it.
type charEncoder struct{}

func (charEncoder) append(dst []int32, text string) []int32 {
	for i := 0; i < len(text); i++ {
		c := text[i]
		id := int32(0)
		if c >= 'a' && c <= 'z' {
			id = int32(c-'a') + 1
		}
		dst = append(dst, id)
	}
	return dst
}

// byteEncoder maps each byte of text to its value.
type byteEncoder struct{}

func (byteEncoder) append(dst []int32, text string) []int32 {
	for i := 0; i < len(text); i++ {
		dst = append(dst, int32(text[i]))
	}
	return dst
}

// append appends the GPT-2 ids of text (valid UTF-8) to dst.
func (e *encoder) append(dst []int32, text string) []int32 {
	for len(text) > 0 {
		n := nextPiece(text)
		p := text[:n]
		text = text[n:]
		ids, ok := e.memo[p]
		if !ok {
			ids = e.v.codecIDs(nil, p)
			if len(e.memo) >= memoLimit {
				clear(e.memo)
			}
			e.memo[strings.Clone(p)] = ids
		}
		dst = append(dst, ids...)
	}
	return dst
}
