package data

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Doc is one document of a corpus.
type Doc struct {
	Text   string
	Origin string // "file:line" or "file row N", for messages
}

// Source streams the documents of one file or URL in a fixed order, never
// holding more than one document (or one parquet page) in memory.
type Source interface {
	// Name is the path or URL, for messages.
	Name() string
	// Fingerprint changes whenever the content may have changed (path,
	// size and modification time, or URL, size and ETag); it keys the
	// token cache.
	Fingerprint() string
	// Docs yields the documents; iteration stops at the first error, which
	// names the file and line or row.
	Docs(ctx context.Context) iter.Seq2[Doc, error]
}

// OpenSources expands specs (files, folders, globs, hf:// or http(s)://
// parquet URLs) into sources, in the given order; relative paths are taken
// from cfg.Dir. A spec that matches nothing is an error, with a hint on how
// to get the data.
func OpenSources(ctx context.Context, cfg Config, specs []string) ([]Source, error) {
	var out []Source
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute // a stalled server fails instead of hanging
	client := &http.Client{Transport: tr}
	for _, spec := range specs {
		switch {
		case strings.HasPrefix(spec, "hf://"):
			srcs, err := openHF(ctx, client, hfEndpoint(cfg.HFEndpoint), spec, cfg.TextField)
			if err != nil {
				return nil, err
			}
			out = append(out, srcs...)
		case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
			src, err := openHTTPParquet(ctx, client, spec, spec, cfg.TextField)
			if err != nil {
				return nil, err
			}
			out = append(out, src)
		default:
			paths, err := expandPath(cfg.dir(), spec)
			if err != nil {
				return nil, err
			}
			for _, p := range paths {
				src, err := openFileSource(p, cfg)
				if err != nil {
					return nil, err
				}
				out = append(out, src)
			}
		}
	}
	return out, nil
}

// expandPath resolves a file, folder or glob to files, sorted by name.
func expandPath(dir, spec string) ([]string, error) {
	p := spec
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	if strings.ContainsAny(spec, "*?[") {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("data source %q: %w", spec, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("data source %q: no files match %s%s", spec, p, fetchHint)
		}
		var files []string
		for _, q := range m {
			fs, err := expandResolved(spec, q)
			if err != nil {
				return nil, err
			}
			files = append(files, fs...)
		}
		return files, nil
	}
	return expandResolved(spec, p)
}

// expandResolved lists the file p, or the files under folder p.
func expandResolved(spec, p string) ([]string, error) {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data source %q: %s does not exist%s", spec, p, fetchHint)
	}
	if err != nil {
		return nil, fmt.Errorf("data source %q: %w", spec, err)
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != p && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data source %q: %w", spec, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("data source %q: folder %s holds no files", spec, p)
	}
	slices.Sort(files)
	return files, nil
}

const fetchHint = `; run "make data" (cmd/datafetch) or point data.dir / $DATA_DIR at a folder that has it`

// formatOf decides a file's format when Config.Format is auto.
func formatOf(format, name string) string {
	if format != "auto" {
		return format
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".gz")
	switch filepath.Ext(name) {
	case ".jsonl", ".json", ".ndjson":
		return "jsonl"
	case ".parquet":
		return "parquet"
	}
	return "text"
}

func openFileSource(path string, cfg Config) (Source, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data source: %w", err)
	}
	fp := fmt.Sprintf("%s|%d|%d", path, st.Size(), st.ModTime().UnixNano())
	if abs, err := filepath.Abs(path); err == nil {
		fp = fmt.Sprintf("%s|%d|%d", abs, st.Size(), st.ModTime().UnixNano())
	}
	switch formatOf(cfg.Format, path) {
	case "jsonl":
		return &jsonlSource{path: path, fp: fp, field: cfg.TextField}, nil
	case "parquet":
		return &parquetSource{name: path, fp: fp, column: cfg.TextField, open: openLocalParquet(path)}, nil
	default:
		return &textSource{path: path, fp: fp, split: cfg.docSplit()}, nil
	}
}
