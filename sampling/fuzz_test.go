package sampling

import (
	"strings"
	"testing"
)

// FuzzParseInfill: any text gives a template or an error, never a panic,
// and never more positions than the text can ask for within the limit.
func FuzzParseInfill(f *testing.F) {
	for _, s := range []string{"She [MASK:4] the door.", "[MASK:1]", "[MASK:0]", "[MASK", "a [MASK:3] b [MASK:2] c", "[MASK:99999999999]", "[MASK:-1]", "[MASK:4]]", ""} {
		f.Add(s)
	}
	encode := func(s string) []int { return make([]int, len(strings.Fields(s))) }
	f.Fuzz(func(t *testing.T, text string) {
		tpl, err := ParseInfill(text, encode)
		if err != nil {
			return
		}
		if len(tpl.Tokens) != len(tpl.Given) || len(tpl.Tokens) > maxInfillTokens+len(text) {
			t.Fatalf("template of %d tokens, %d flags from %d bytes", len(tpl.Tokens), len(tpl.Given), len(text))
		}
	})
}
