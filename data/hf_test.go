package data

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

type pqRow struct {
	ID   int64   `parquet:"id"`
	Text *string `parquet:"text,optional"`
}

// parquetBytes writes rows as a parquet file with small row groups, so
// reading crosses row-group and page boundaries.
func parquetBytes(t testing.TB, texts []*string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := parquet.NewGenericWriter[pqRow](&b, parquet.MaxRowsPerRowGroup(7), parquet.PageBufferSize(512))
	for i, s := range texts {
		if _, err := w.Write([]pqRow{{ID: int64(i), Text: s}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func strs(n int, prefix string) []*string {
	var out []*string
	for i := range n {
		s := fmt.Sprintf("%s document %d: %s", prefix, i, strings.Repeat("lorem ipsum ", i%20))
		out = append(out, &s)
	}
	return out
}

// hubServer imitates the Hub on 127.0.0.1: resolve URLs served with range
// support, and a paginated tree listing.
type hubServer struct {
	*httptest.Server
	files    map[string][]byte
	requests atomic.Int64
	noRange  atomic.Int64 // GETs of files without a Range header
}

func newHub(t *testing.T, files map[string][]byte) *hubServer {
	h := &hubServer{files: files}
	mux := http.NewServeMux()
	mux.HandleFunc("/datasets/owner/corpus/resolve/main/", func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		if r.Header.Get("Range") == "" {
			h.noRange.Add(1)
		}
		b, ok := h.files[strings.TrimPrefix(r.URL.Path, "/datasets/owner/corpus/resolve/main/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, len(b)))
		http.ServeContent(w, r, "f.parquet", time.Time{}, bytes.NewReader(b))
	})
	mux.HandleFunc("/api/datasets/owner/corpus/tree/main/data", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for n := range h.files {
			names = append(names, n)
		}
		slices.Sort(names)
		type entry struct{ Type, Path string }
		page := []entry{{"directory", "data/sub"}, {"file", "data/README.md"}}
		if r.URL.Query().Get("cursor") == "" {
			page = append(page, entry{"file", names[1]}) // out of order on purpose
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?recursive=true&cursor=2>; rel="next"`, h.URL, r.URL.Path))
		} else {
			page = append(page, entry{"file", names[0]})
		}
		json.NewEncoder(w).Encode(page)
	})
	mux.HandleFunc("/plain.parquet", func(w http.ResponseWriter, r *http.Request) {
		w.Write(h.files["data/train-00000.parquet"]) // ignores Range
	})
	h.Server = httptest.NewServer(mux)
	t.Cleanup(h.Close)
	return h
}

func TestParseHF(t *testing.T) {
	for _, tc := range []struct{ in, repo, rev, path string }{
		{"hf://datasets/Skylion007/openwebtext", "Skylion007/openwebtext", "main", ""},
		{"hf://datasets/Salesforce/wikitext/wikitext-2-raw-v1/test-00000-of-00001.parquet", "Salesforce/wikitext", "main", "wikitext-2-raw-v1/test-00000-of-00001.parquet"},
		{"hf://datasets/Skylion007/openwebtext@refs%2Fconvert%2Fparquet/plain_text/train", "Skylion007/openwebtext", "refs/convert/parquet", "plain_text/train"},
		{"hf://datasets/openwebtext", "openwebtext", "main", ""},
		{"hf://datasets/lambada/test.parquet", "lambada", "main", "test.parquet"},
	} {
		r, err := parseHF(tc.in)
		if err != nil || r.repo != tc.repo || r.rev != tc.rev || r.path != tc.path {
			t.Errorf("parseHF(%q) = %+v, %v", tc.in, r, err)
		}
	}
	r, _ := parseHF("hf://datasets/Skylion007/openwebtext@refs%2Fconvert%2Fparquet/plain_text/train/0000.parquet")
	if u := r.resolveURL("https://huggingface.co", r.path); u != "https://huggingface.co/datasets/Skylion007/openwebtext/resolve/refs%2Fconvert%2Fparquet/plain_text/train/0000.parquet" {
		t.Errorf("resolve URL %s", u)
	}
	for _, bad := range []string{"hf://models/gpt2", "hf://datasets/", "hf://datasets/a/b@/x.parquet"} {
		if _, err := parseHF(bad); err == nil {
			t.Errorf("parseHF(%q) accepted", bad)
		}
	}
	t.Setenv("HF_ENDPOINT", "http://mirror.local/")
	if hfEndpoint("") != "http://mirror.local" || hfEndpoint("http://x") != "http://x" {
		t.Error("endpoint override")
	}
}

func TestHFParquetStreaming(t *testing.T) {
	a, b := strs(40, "first"), strs(25, "second")
	hub := newHub(t, map[string][]byte{
		"data/train-00000.parquet": parquetBytes(t, a),
		"data/train-00001.parquet": parquetBytes(t, b),
	})
	cfg := DefaultConfig()
	cfg.HFEndpoint = hub.URL
	docs, err := docsOf(t, cfg, "hf://datasets/owner/corpus/data/train-00000.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 40 || docs[39].Text != *a[39] || !strings.HasSuffix(docs[39].Origin, "row 40") {
		t.Fatalf("%d docs; last %q at %s", len(docs), docs[len(docs)-1].Text, docs[len(docs)-1].Origin)
	}
	// A folder lists its parquet files (paginated, sorted by path), via
	// $HF_ENDPOINT this time.
	t.Setenv("HF_ENDPOINT", hub.URL)
	cfg.HFEndpoint = ""
	docs, err = docsOf(t, cfg, "hf://datasets/owner/corpus/data")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range append(a, b...) {
		want = append(want, *s)
	}
	if !slices.Equal(texts(docs), want) {
		t.Fatalf("folder: %d docs, want %d in order", len(docs), len(want))
	}
	if hub.noRange.Load() != 0 {
		t.Errorf("%d whole-file GETs; the source must use range requests", hub.noRange.Load())
	}

	// End to end: tokenised into the cache once, then mapped.
	cfg.CacheDir, cfg.Train, cfg.Split = t.TempDir(), []string{"hf://datasets/owner/corpus/data"}, []float64{0.8, 0.1, 0.1}
	c := loadOK(t, cfg)
	if n := c.Train.NumDocs() + c.Valid.NumDocs() + c.Test.NumDocs(); n != 65 {
		t.Errorf("%d docs loaded, want 65", n)
	}
	before := hub.requests.Load()
	loadOK(t, cfg)
	if got := hub.requests.Load() - before; got != 2 { // one size probe per file, no data
		t.Errorf("cached load made %d file requests, want 2 probes", got)
	}
}

// httpFile reads any range through a bounded block cache.
func TestHTTPFileRanges(t *testing.T) {
	content := make([]byte, 100_000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	hub := newHub(t, map[string][]byte{"data/blob.parquet": content})
	u := hub.URL + "/datasets/owner/corpus/resolve/main/data/blob.parquet"
	size, _, err := probeHTTP(context.Background(), http.DefaultClient, u)
	if err != nil || size != int64(len(content)) {
		t.Fatalf("probe: %d %v", size, err)
	}
	f := &httpFile{ctx: context.Background(), client: http.DefaultClient, url: u, name: "blob", size: size,
		blocks: map[int64][]byte{}, blockBytes: 4096}
	for _, r := range [][2]int{{0, 10}, {4090, 20}, {50_000, 30_000}, {99_990, 10}, {0, 100_000}} {
		p := make([]byte, r[1])
		n, err := f.ReadAt(p, int64(r[0]))
		if err != nil || n != r[1] || !bytes.Equal(p, content[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", r[0], r[1], n, err)
		}
		if len(f.blocks) > httpMaxBlocks {
			t.Fatalf("%d blocks cached", len(f.blocks))
		}
	}
	if n, err := f.ReadAt(make([]byte, 20), 99_990); n != 10 || err == nil {
		t.Errorf("read past the end: %d, %v", n, err)
	}
}

func TestParquetBadInput(t *testing.T) {
	good := strs(5, "x")
	withNull := append(strs(3, "y"), nil)
	hub := newHub(t, map[string][]byte{
		"data/train-00000.parquet": parquetBytes(t, good),
		"data/null.parquet":        parquetBytes(t, withNull),
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "local.parquet"), parquetBytes(t, good), 0o644)
	os.WriteFile(filepath.Join(dir, "fake.parquet"), []byte("not parquet at all"), 0o644)
	for _, tc := range []struct {
		spec, field string
		want        []string
	}{
		{"hf://datasets/owner/corpus/data/null.parquet", "text", []string{"null.parquet", "row 4", "null"}},
		{"hf://datasets/owner/corpus/data/train-00000.parquet", "body", []string{"train-00000.parquet", `no column "body"`, "id, text"}},
		{"hf://datasets/owner/corpus/data/missing.parquet", "text", []string{"missing.parquet", "404"}},
		{hub.URL + "/plain.parquet", "text", []string{"range requests"}},
		{"local.parquet", "id", []string{"local.parquet", `"id" is not a plain string column`}},
		{"fake.parquet", "text", []string{"fake.parquet", "not a readable parquet file"}},
	} {
		cfg := DefaultConfig()
		cfg.Dir, cfg.HFEndpoint, cfg.TextField = dir, hub.URL, tc.field
		_, err := docsOf(t, cfg, tc.spec)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v does not mention %q", tc.spec, err, w)
			}
		}
	}
	// A local parquet file reads like a remote one.
	cfg := DefaultConfig()
	cfg.Dir = dir
	docs, err := docsOf(t, cfg, "local.parquet")
	if err != nil || len(docs) != 5 || docs[4].Text != *good[4] {
		t.Errorf("local parquet: %d docs, %v", len(docs), err)
	}
}
