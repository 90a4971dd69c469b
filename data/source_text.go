package data

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"unicode/utf8"
)

// lineReader reads a text file (gzip-compressed or not, detected by its
// magic bytes) line by line. It drops a leading UTF-8 byte-order mark and
// turns CRLF into LF, so a corpus tokenises the same whatever the platform
// that saved it, and rejects invalid UTF-8 with the file and line.
type lineReader struct {
	path string
	f    *os.File
	gz   *gzip.Reader
	r    *bufio.Reader
	line int
}

func openLines(path string) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %w", err)
	}
	lr := &lineReader{path: path, f: f, r: bufio.NewReaderSize(f, 1<<16)}
	if magic, _ := lr.r.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		if lr.gz, err = gzip.NewReader(lr.r); err != nil {
			f.Close()
			return nil, fmt.Errorf("read %s: gzip: %w", path, err)
		}
		lr.r = bufio.NewReaderSize(lr.gz, 1<<16)
	}
	return lr, nil
}

// next returns the next line with its "\n" (absent on a last line without
// one), or io.EOF.
func (l *lineReader) next() (string, error) {
	s, err := l.r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		if errors.Is(err, io.EOF) {
			return "", io.EOF
		}
		if l.gz != nil {
			return "", fmt.Errorf("%s:%d: gzip: %w", l.path, l.line+1, err)
		}
		return "", fmt.Errorf("%s:%d: %w", l.path, l.line+1, err)
	}
	l.line++
	if l.line == 1 {
		s = strings.TrimPrefix(s, "\ufeff")
	}
	if strings.HasSuffix(s, "\r\n") {
		s = s[:len(s)-2] + "\n"
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%s:%d: invalid UTF-8 at byte %d of the line", l.path, l.line, invalidAt(s)+1)
	}
	return s, nil
}

func (l *lineReader) close() {
	if l.gz != nil {
		l.gz.Close()
	}
	l.f.Close()
}

func invalidAt(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// textSource is a plain-text file cut into documents by doc_split.
// Whitespace-only documents are not documents (blank separators), but a
// file that yields none at all is an error.
type textSource struct {
	path, fp, split string
}

func (s *textSource) Name() string        { return s.path }
func (s *textSource) Fingerprint() string { return "text|" + s.split + "|" + s.fp }

func (s *textSource) Docs(ctx context.Context) iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		lr, err := openLines(s.path)
		if err != nil {
			yield(Doc{}, err)
			return
		}
		defer lr.close()
		var sb strings.Builder
		start, n := 0, 0
		prevBlank, sawBlank := false, false // article mode, see isWikiTitle
		emit := func() bool {
			text := sb.String()
			sb.Reset()
			if s.split == "paragraph" {
				text = strings.TrimSuffix(text, "\n")
			}
			if strings.TrimSpace(text) == "" {
				return true
			}
			n++
			return yield(Doc{Text: text, Origin: fmt.Sprintf("%s:%d", s.path, start)}, nil)
		}
		for {
			line, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				yield(Doc{}, err)
				return
			}
			boundary := false
			switch s.split {
			case "line":
				line, boundary = strings.TrimSuffix(line, "\n"), true
			case "paragraph":
				if strings.TrimSpace(line) == "" {
					if !emit() {
						return
					}
					continue
				}
			case "article":
				if isWikiTitle(line) && (prevBlank || !sawBlank) && !emit() {
					return
				}
				blank := strings.TrimSpace(line) == ""
				prevBlank, sawBlank = blank, sawBlank || blank
			}
			if sb.Len() == 0 {
				start = lr.line
			}
			sb.WriteString(line)
			if boundary && !emit() {
				return
			}
		}
		if !emit() {
			return
		}
		if n == 0 {
			yield(Doc{}, fmt.Errorf("%s: no documents (the file is empty or blank)", s.path))
		}
	}
}

// isWikiTitle reports a top-level WikiText heading, " = Title = ", as
// opposed to section headings " = = Section = = ". Some equations look the
// same (" = 1 rad / s and a nominal impedance k = "), so in article mode a
// heading only starts an article after a blank line, as titles do in the
// WikiText release files; in a file without any blank lines (a derived
// copy that dropped them) every such line does.
func isWikiTitle(line string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= 5 && strings.HasPrefix(t, "= ") && strings.HasSuffix(t, " =") &&
		!strings.HasPrefix(t, "= =") && !strings.HasSuffix(t, "= =")
}

// jsonlSource is a JSON-lines file (optionally gzip-compressed); each
// non-blank line is an object whose text field is one document.
type jsonlSource struct {
	path, fp, field string
}

func (s *jsonlSource) Name() string        { return s.path }
func (s *jsonlSource) Fingerprint() string { return "jsonl|" + s.field + "|" + s.fp }

func (s *jsonlSource) Docs(ctx context.Context) iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		lr, err := openLines(s.path)
		if err != nil {
			yield(Doc{}, err)
			return
		}
		defer lr.close()
		n := 0
		for {
			line, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err == nil {
				err = ctx.Err()
			}
			var text string
			if err == nil && strings.TrimSpace(line) != "" {
				text, err = jsonField(line, s.field)
				if err != nil {
					err = fmt.Errorf("%s:%d: %w", s.path, lr.line, err)
				}
			}
			if err != nil {
				yield(Doc{}, err)
				return
			}
			if strings.TrimSpace(text) == "" {
				continue
			}
			n++
			if !yield(Doc{Text: text, Origin: fmt.Sprintf("%s:%d", s.path, lr.line)}, nil) {
				return
			}
		}
		if n == 0 {
			yield(Doc{}, fmt.Errorf("%s: no documents (the file is empty or all texts are blank)", s.path))
		}
	}
}

func jsonField(line, field string) (string, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return "", fmt.Errorf("not a JSON object: %w", err)
	}
	raw, ok := rec[field]
	if !ok {
		return "", fmt.Errorf("no %q field", field)
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return "", fmt.Errorf("field %q is not a string", field)
	}
	return text, nil
}
