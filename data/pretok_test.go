package data

import (
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// The memoised piecewise encoder gives the codec's ids exactly.
func TestPretokMatchesCodec(t *testing.T) {
	v := gpt2(t)
	check := func(name, text string) {
		t.Helper()
		got := v.encodeBase(nil, text) // memoised, piece by piece
		if want := v.codecIDs(nil, text); !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s: ids differ at token %d: %v vs codec %v", name, i, got[i:min(i+5, len(got))], want[i:min(i+5, len(want))])
		}
	}
	for _, s := range []string{"Hello world", "  a  b   \n\n c\t\td ", "I'm it's we're they've I'll he'd 'S 'x", " 123 4.5 ½ ⅷ", "naïve café 日本語 🙂 —“quoted”", "\u00a0x\u2003y \u3000z", "a\r\nb ", "'", " ", "x'", "  !!", " '"} {
		check(s, s)
	}
	// Random strings over a tricky alphabet.
	alphabet := []rune(" \t\n\r'sStTrevlmdé1½!?.\u00a0\u2003日🙂-")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		var sb strings.Builder
		for range rng.IntN(30) {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		check("random "+string(rune('0'+i%10)), sb.String())
	}
	// The real corpora, up to 1.2 MB each (the codec is slow; whole files
	// were checked too when this was written, and matched).
	for _, f := range allSharedFiles {
		b, err := os.ReadFile(sharedFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		check(f, strings.ToValidUTF8(string(b[:min(len(b), 1_200_000)]), ""))
	}
}
