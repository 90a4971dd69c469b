package data

import (
	"fmt"
	"regexp"
	"strings"
)

// Detokenizers undo the word-level tokenisation of corpora such as
// WikiText and PTB before GPT-2 BPE sees them, so that perplexities are
// comparable to the zero-shot numbers of MDLM and SEDD, which apply exactly
// these rules (ported from MDLM's dataloader.py).

// NewDetokenizer returns the named detokenizer (none|wikitext|ptb|lambada).
func NewDetokenizer(name string) (func(string) string, error) {
	switch name {
	case "", "none":
		return func(s string) string { return s }, nil
	case "wikitext":
		return newWikitextDetok().perLine, nil
	case "ptb":
		return ptbDetok, nil
	case "lambada":
		return lambadaDetok, nil
	}
	return nil, fmt.Errorf("unknown detokenizer %q (want one of %s)", name, strings.Join(detokenizers, "|"))
}

type wikitextDetok struct {
	slashDigit, paren, bracket, brace, dquote, squote *regexp.Regexp
}

func newWikitextDetok() *wikitextDetok {
	return &wikitextDetok{
		// MDLM's r"/' [0-9]/" is a literal pattern (the slashes are part of
		// it) replaced by the literal "/'[0-9]/"; ported as written.
		slashDigit: regexp.MustCompile(`/' [0-9]/`),
		paren:      regexp.MustCompile(`\(\s*([^\)]*?)\s*\)`),
		bracket:    regexp.MustCompile(`\[\s*([^\]]*?)\s*\]`),
		brace:      regexp.MustCompile(`{\s*([^}]*?)\s*}`),
		dquote:     regexp.MustCompile(`"\s*([^"]*?)\s*"`),
		squote:     regexp.MustCompile(`'\s*([^']*?)\s*'`),
	}
}

// perLine applies the rules line by line, as MDLM does to the rows (one
// line each) of the Hugging Face WikiText dataset; quotes and brackets
// therefore never pair across lines.
func (d *wikitextDetok) perLine(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n') + 1
		if i == 0 {
			i = len(s)
		}
		sb.WriteString(d.line(s[:i]))
		s = s[i:]
	}
	return sb.String()
}

// line is MDLM's wt_detokenizer; sequential replacements, in its order.
func (d *wikitextDetok) line(s string) string {
	s = strings.ReplaceAll(s, "s '", "s'")
	s = d.slashDigit.ReplaceAllLiteralString(s, "/'[0-9]/")
	for _, r := range [][2]string{
		{" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."},
		{" : ", ": "}, {" ; ", "; "}, {" . ", ". "}, {" ! ", "! "}, {" ? ", "? "}, {" , ", ", "},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	s = d.paren.ReplaceAllString(s, "(${1})")
	s = d.bracket.ReplaceAllString(s, "[${1}]")
	s = d.brace.ReplaceAllString(s, "{${1}}")
	s = d.dquote.ReplaceAllString(s, `"${1}"`)
	s = d.squote.ReplaceAllString(s, "'${1}'")
	for _, r := range [][2]string{
		{"= = = =", "===="}, {"= = =", "==="}, {"= =", "=="},
		{" \u00b0 ", "\u00b0"}, {" \n", "\n"}, {"\n ", "\n"}, {" N ", " 1 "}, {" 's", "'s"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// ptbDetok is MDLM's ptb_detokenizer.
func ptbDetok(x string) string {
	for _, r := range [][2]string{{" 's", "'s"}, {"s ' ", "s' "}, {" n't", "n't"}, {" \n ", "\n"}, {`\/`, "/"}} {
		x = strings.ReplaceAll(x, r[0], r[1])
	}
	for range 10 {
		x = strings.ReplaceAll(x, " N ", " 1 ")
	}
	for _, r := range [][2]string{{"$ 1", "$1"}, {"# 1", "#1"}, {"<unk>", "?"}} {
		x = strings.ReplaceAll(x, r[0], r[1])
	}
	return x
}

// lambadaDetok is MDLM's lambada_detokenizer: straight double quotes and a
// leading newline. Python's str.strip removes Unicode whitespace, as
// strings.TrimSpace does.
func lambadaDetok(text string) string {
	text = strings.ReplaceAll(text, "\u201c", `"`)
	text = strings.ReplaceAll(text, "\u201d", `"`)
	return "\n" + strings.TrimSpace(text)
}
