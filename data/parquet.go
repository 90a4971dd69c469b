package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
)

// parquetSource reads one string column of a parquet file, one document per
// row, page by page: memory holds one page of values, never the file.
type parquetSource struct {
	name, fp, column string
	open             func(ctx context.Context) (io.ReaderAt, int64, io.Closer, error)
}

func (s *parquetSource) Name() string        { return s.name }
func (s *parquetSource) Fingerprint() string { return "parquet|" + s.column + "|" + s.fp }

func openLocalParquet(path string) func(context.Context) (io.ReaderAt, int64, io.Closer, error) {
	return func(context.Context) (io.ReaderAt, int64, io.Closer, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("read %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("read %w", err)
		}
		return f, st.Size(), f, nil
	}
}

func (s *parquetSource) Docs(ctx context.Context) iter.Seq2[Doc, error] {
	return func(yield func(Doc, error) bool) {
		fail := func(format string, args ...any) {
			yield(Doc{}, fmt.Errorf("%s: %s", s.name, fmt.Sprintf(format, args...)))
		}
		r, size, closer, err := s.open(ctx)
		if err != nil {
			yield(Doc{}, err)
			return
		}
		defer closer.Close()
		f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true),
			parquet.ReadBufferSize(1<<20))
		if err != nil {
			fail("not a readable parquet file: %v", err)
			return
		}
		leaf, ok := f.Schema().Lookup(s.column)
		if !ok {
			var cols []string
			for _, path := range f.Schema().Columns() {
				cols = append(cols, strings.Join(path, "."))
			}
			fail("no column %q (columns: %s)", s.column, strings.Join(cols, ", "))
			return
		}
		if leaf.MaxRepetitionLevel > 0 || leaf.Node.Type().Kind() != parquet.ByteArray {
			fail("column %q is not a plain string column", s.column)
			return
		}
		row, n := int64(0), 0
		for _, rg := range f.RowGroups() {
			pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
			for {
				page, err := pages.ReadPage()
				if errors.Is(err, io.EOF) {
					break
				}
				if err == nil {
					err = ctx.Err()
				}
				if err != nil {
					pages.Close()
					fail("row %d: %v", row+1, err)
					return
				}
				values := make([]parquet.Value, page.NumValues())
				if k, err := page.Values().ReadValues(values); err != nil && !errors.Is(err, io.EOF) {
					pages.Close()
					fail("row %d: %v", row+1, err)
					return
				} else {
					values = values[:k]
				}
				for _, v := range values {
					row++
					if v.IsNull() {
						pages.Close()
						fail("row %d: %q is null", row, s.column)
						return
					}
					text := string(v.ByteArray())
					if !utf8.ValidString(text) {
						pages.Close()
						fail("row %d: invalid UTF-8 at byte %d of %q", row, invalidAt(text)+1, s.column)
						return
					}
					if strings.TrimSpace(text) == "" {
						continue
					}
					n++
					if !yield(Doc{Text: text, Origin: fmt.Sprintf("%s row %d", s.name, row)}, nil) {
						pages.Close()
						return
					}
				}
			}
			pages.Close()
		}
		if n == 0 {
			fail("no documents (no rows, or all texts are blank)")
		}
	}
}
