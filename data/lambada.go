package data

import (
	"context"
	"fmt"
	"strings"
	"unicode"
)

// LambadaExample is one LAMBADA passage cut into context and target word.
//
// The target is the last whitespace-separated field of the passage. The
// cut is made on the passage's own GPT-2 tokenisation, at the token where
// the target begins: that token starts at the space before the word when
// there is one (GPT-2 glues a single leading space to a word), else at the
// word. So ContextIDs followed by TargetIDs is exactly Encode(Text), and
// Context + Text[len(Context):] == Text; Decode(TargetIDs) is the target
// with its leading space. Use ContextIDs rather than Encode(Context): they
// differ where a newline run precedes the word (3 of the 5153 test
// passages), as "\n\n" is one token at the end of a text but two before a
// word.
type LambadaExample struct {
	Text       string
	Context    string // Text up to where the target's tokens begin
	Target     string // the last whitespace-separated field
	ContextIDs []int
	TargetIDs  []int
}

// LoadLambada reads a LAMBADA JSON-lines file ({"text": ...} per line, as
// OpenAI's lambada_test.jsonl) in order. The text is used as is (that file
// is already detokenised) apart from the vocabulary's normalisation: at
// character level the passage and its target are text8-normalised, and the
// target's tokens are its leading space and its letters.
func LoadLambada(path string, v *Vocab) ([]LambadaExample, error) {
	src := &jsonlSource{path: path, field: "text"}
	var out []LambadaExample
	for doc, err := range src.Docs(context.Background()) {
		if err != nil {
			return nil, fmt.Errorf("lambada: %w", err)
		}
		ex, err := lambadaExample(doc.Text, v)
		if err != nil {
			return nil, fmt.Errorf("lambada %s: %w", doc.Origin, err)
		}
		out = append(out, ex)
	}
	return out, nil
}

func lambadaExample(text string, v *Vocab) (LambadaExample, error) {
	text = v.Normalize(text)
	body := strings.TrimRightFunc(text, unicode.IsSpace)
	fields := strings.Fields(body)
	if len(fields) < 2 {
		return LambadaExample{}, fmt.Errorf("passage has no context before its last word")
	}
	target := fields[len(fields)-1]
	cut := len(body) - len(target)
	if text[cut-1] == ' ' {
		cut--
	}
	ids := v.encodeBase(nil, text)
	pos, k := 0, 0 // byte offset of token k
	for k < len(ids) {
		piece := v.basePiece(ids[k])
		if pos+len(piece) > cut {
			break
		}
		pos += len(piece)
		k++
	}
	ex := LambadaExample{Text: text, Context: text[:pos], Target: target}
	for i, id := range ids {
		if i < k {
			ex.ContextIDs = append(ex.ContextIDs, int(v.fromGPT2(id)))
		} else {
			ex.TargetIDs = append(ex.TargetIDs, int(v.fromGPT2(id)))
		}
	}
	return ex, nil
}
