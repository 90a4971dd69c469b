package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func docsOf(t *testing.T, cfg Config, specs ...string) ([]Doc, error) {
	t.Helper()
	srcs, err := OpenSources(context.Background(), cfg, specs)
	if err != nil {
		return nil, err
	}
	var out []Doc
	for _, s := range srcs {
		for d, err := range s.Docs(context.Background()) {
			if err != nil {
				return out, err
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func texts(docs []Doc) []string {
	var out []string
	for _, d := range docs {
		out = append(out, d.Text)
	}
	return out
}

func gz(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func TestTextDocSplit(t *testing.T) {
	dir := t.TempDir()
	// BOM and CRLF are normalised away.
	writeFile(t, dir, "a.txt", "\ufeffPara one,\r\nline two.\r\n\r\n\r\nPara two.\r\n  \r\nPara three")
	wiki := " \n = First = \n \n Intro . \n = = Section = = \n More \n = x + 1 = \n \n = Second = \n Text . \n"
	writeFile(t, dir, "w.txt", wiki)
	for _, tc := range []struct {
		split, file string
		want        []string
	}{
		{"file", "a.txt", []string{"Para one,\nline two.\n\n\nPara two.\n  \nPara three"}},
		{"paragraph", "a.txt", []string{"Para one,\nline two.", "Para two.", "Para three"}},
		{"line", "a.txt", []string{"Para one,", "line two.", "Para two.", "Para three"}},
		{"article", "w.txt", []string{" = First = \n \n Intro . \n = = Section = = \n More \n = x + 1 = \n \n", " = Second = \n Text . \n"}},
	} {
		cfg := DefaultConfig()
		cfg.Dir, cfg.DocSplit = dir, tc.split
		docs, err := docsOf(t, cfg, tc.file)
		if err != nil {
			t.Fatalf("%s: %v", tc.split, err)
		}
		if got := texts(docs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: docs = %q, want %q", tc.split, got, tc.want)
		}
	}
	// Origins point at the first line of each document.
	cfg := DefaultConfig()
	cfg.Dir, cfg.DocSplit = dir, "paragraph"
	docs, _ := docsOf(t, cfg, "a.txt")
	if docs[1].Origin != filepath.Join(dir, "a.txt")+":5" {
		t.Errorf("origin = %q", docs[1].Origin)
	}
}

func TestSourcesFormatsGlobsFolders(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "c/b.txt", "bee")
	writeFile(t, dir, "c/a.txt.gz", gz(t, "ay"))
	writeFile(t, dir, "c/.hidden", "never read")
	writeFile(t, dir, "c/sub/z.jsonl", `{"text": "zed", "id": 1}`+"\n\n"+`{"id": 2, "text": "zed two"}`)
	writeFile(t, dir, "d.jsonl.gz", gz(t, `{"body": "gzipped json"}`+"\n"))
	cfg := DefaultConfig()
	cfg.Dir = dir
	docs, err := docsOf(t, cfg, "c", "c/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ay", "bee", "zed", "zed two", "bee"}
	if got := texts(docs); !slices.Equal(got, want) {
		t.Errorf("docs = %q, want %q", got, want)
	}
	cfg.TextField = "body"
	docs, err = docsOf(t, cfg, filepath.Join(dir, "d.jsonl.gz"))
	if err != nil || len(docs) != 1 || docs[0].Text != "gzipped json" {
		t.Errorf("gzipped jsonl: %q, %v", texts(docs), err)
	}
	// format: text forces a .jsonl file to be read as text.
	cfg.Format = "text"
	docs, err = docsOf(t, cfg, "c/sub/z.jsonl")
	if err != nil || len(docs) != 1 || !strings.HasPrefix(docs[0].Text, `{"text"`) {
		t.Errorf("format text: %q, %v", texts(docs), err)
	}
}

// Bad input: a clear error naming the file (and line), never a panic or a
// silent skip.
func TestSourceBadInput(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "empty.txt", "")
	writeFile(t, dir, "blank.txt", " \n\n\t\n")
	writeFile(t, dir, "latin1.txt", "fine line\nna\xefve\n")
	writeFile(t, dir, "nofield.jsonl", `{"text": "ok"}`+"\n"+`{"txt": "typo"}`+"\n")
	writeFile(t, dir, "notstring.jsonl", `{"text": 42}`+"\n")
	writeFile(t, dir, "broken.jsonl", `{"text": "ok"}`+"\n"+`{"text": "unterminated`+"\n")
	writeFile(t, dir, "badutf.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"\xff\"}\n")
	writeFile(t, dir, "badgz.txt.gz", gz(t, "some text that will be cut")[:20])
	writeFile(t, dir, "empty.jsonl", "\n\n")
	writeFile(t, dir, "blanks.jsonl", `{"text": " "}`+"\n")
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"missing.txt", []string{"missing.txt", "does not exist", "make data"}},
		{"nomatch/*.txt", []string{"nomatch/*.txt", "no files match"}},
		{"empty.txt", []string{"empty.txt", "no documents"}},
		{"blank.txt", []string{"blank.txt", "no documents"}},
		{"latin1.txt", []string{"latin1.txt:2:", "invalid UTF-8 at byte 3"}},
		{"nofield.jsonl", []string{"nofield.jsonl:2:", `no "text" field`}},
		{"notstring.jsonl", []string{"notstring.jsonl:1:", "not a string"}},
		{"broken.jsonl", []string{"broken.jsonl:2:", "not a JSON object"}},
		{"badutf.jsonl", []string{"badutf.jsonl:2:", "invalid UTF-8"}},
		{"badgz.txt.gz", []string{"badgz.txt.gz:1: gzip: unexpected EOF"}},
		{"empty.jsonl", []string{"empty.jsonl", "no documents"}},
		{"blanks.jsonl", []string{"blanks.jsonl", "no documents"}},
	} {
		cfg := DefaultConfig()
		cfg.Dir = dir
		_, err := docsOf(t, cfg, tc.spec)
		if err == nil {
			t.Errorf("%s: no error", tc.spec)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.spec, err, w)
			}
		}
	}
}

// WikiText splits into articles on its top-level headings: 60 each in the
// validation and test sets. The raw copy here dropped its blank lines, so
// two equations of the "Constant k filter" article that look like titles
// split it too (62).
func TestWikitextArticles(t *testing.T) {
	dir := sharedData(t)
	for _, tc := range []struct {
		file  string
		n     int
		first string
	}{
		{"wikitext-2/valid.txt", 60, " = Homarus gammarus = \n"},
		{"wikitext-2/test.txt", 60, " = Robert <unk> = \n"},
		{"wikitext-2-raw/wiki.test.raw", 62, " = Robert Boulter = \n"},
	} {
		cfg := DefaultConfig()
		cfg.Dir, cfg.Detokenizer = dir, "wikitext"
		docs, err := docsOf(t, cfg, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		if len(docs) != tc.n || !strings.HasPrefix(docs[0].Text, tc.first) {
			t.Errorf("%s: %d articles, first starts %q", tc.file, len(docs), docs[0].Text[:min(40, len(docs[0].Text))])
		}
		for _, d := range docs {
			if !isWikiTitle(strings.SplitN(d.Text, "\n", 2)[0]) {
				t.Errorf("%s: article at %s does not start with a title", tc.file, d.Origin)
			}
		}
	}
}
