package data

import (
	"os"
	"strings"
	"testing"
)

func TestDetokenizers(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"wikitext", " The 2 @,@ 500 @-@ year @-@ old , 3 @.@ 5 m wall . \n", " The 2,500-year-old, 3.5 m wall.\n"},
		{"wikitext", " = = Description = = \n", " == Description ==\n"},
		{"wikitext", " = = = Sub = = = \n", " === Sub ===\n"},
		{"wikitext", " = Robert Boulter = \n", " = Robert Boulter =\n"},
		{"wikitext", ` a mass of 6 kilograms ( 13 lb ) ; only becoming " lobster red " on cooking`,
			` a mass of 6 kilograms (13 lb); only becoming "lobster red" on cooking`},
		{"wikitext", " Teddy 's Story : the players ' union ! Why ? \n", " Teddy's Story: the players' union! Why?\n"},
		{"wikitext", " it was 20 ° C , N of here ", " it was 20°C, 1 of here "},
		// Rules apply per line (MDLM's rows): quotes never pair across lines,
		// and a line's leading space stays.
		{"wikitext", " he said \" hi \n \" there \" \n", " he said \" hi\n \"there\"\n"},
		{"ptb", "the company 's shares do n't rise \\/ fall by N N % to $ N <unk>", "the company's shares don't rise / fall by 1 1 % to $1 ?"},
		{"lambada", "  \u201cHello,\u201d she said \n", "\n\"Hello,\" she said"},
		{"none", " a @-@ b ", " a @-@ b "},
	} {
		d, err := NewDetokenizer(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := d(tc.in); got != tc.want {
			t.Errorf("%s(%q)\n got %q\nwant %q", tc.name, tc.in, got, tc.want)
		}
	}
	if _, err := NewDetokenizer("moses"); err == nil || !strings.Contains(err.Error(), "none|wikitext|ptb|lambada") {
		t.Errorf("unknown detokenizer error = %v", err)
	}
}

// On the real WikiText-2 validation set the detokenizer leaves none of the
// tokenisation artefacts it targets.
func TestWikitextDetokReal(t *testing.T) {
	b, err := os.ReadFile(sharedFile(t, "wikitext-2/valid.txt"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := NewDetokenizer("wikitext")
	out := d(string(b))
	for _, bad := range []string{" @-@ ", " @,@ ", " @.@ ", " , ", " . ", " 's", "= = "} {
		if n := strings.Count(out, bad); n != 0 {
			t.Errorf("%d x %q left after detokenising", n, bad)
		}
	}
	if strings.Count(string(b), "\n") != strings.Count(out, "\n") {
		t.Error("line count changed")
	}
	if !strings.Contains(out, "Homarus gammarus, known as the European lobster or common lobster, is a species of <unk> lobster") {
		t.Error("expected detokenised sentence not found")
	}
}
