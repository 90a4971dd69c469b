package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func zipOf(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	for name, content := range files {
		w, err := z.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	z.Close()
	return b.Bytes()
}

func tgzOf(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	tw.Close()
	gz.Close()
	return b.Bytes()
}

type server struct {
	*httptest.Server
	hits atomic.Int64
}

func newServer(t *testing.T, files map[string][]byte) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func runCmd(t *testing.T, items []item, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, items, http.DefaultClient)
	return code, out.String() + errb.String()
}

func TestFetchVerifyAndOffline(t *testing.T) {
	plain := []byte(`{"text": "a passage"}` + "\n")
	raw := "= Title =\nraw text\n"
	srv := newServer(t, map[string][]byte{
		"/lambada_test.jsonl": plain,
		"/wiki.zip":           zipOf(t, map[string]string{"wikitext-2-raw/wiki.test.raw": raw, "wikitext-2-raw/wiki.valid.raw": "v\n"}),
		"/lambada.tar.gz":     tgzOf(t, map[string]string{"lambada-dataset/lambada_test_plain_text.txt": "plain\n"}),
		"/tampered.txt":       []byte("not what was pinned"),
	})
	items := []item{
		{Name: "lambada", Path: "lambada/lambada_test.jsonl", URL: srv.URL + "/lambada_test.jsonl", SHA256: sum(plain)},
		{Name: "wiki", Path: "w/wiki.test.raw", Member: "wiki.test.raw", URL: srv.URL + "/wiki.zip", SHA256: sum([]byte(raw))},
		{Name: "wiki", Path: "w/wiki.valid.raw", Member: "wiki.valid.raw", URL: srv.URL + "/wiki.zip"},
		{Name: "plain", Path: "lambada/plain.txt", Member: "lambada_test_plain_text.txt", URL: srv.URL + "/lambada.tar.gz", Optional: true},
		{Name: "tampered", Path: "t.txt", URL: srv.URL + "/tampered.txt", SHA256: sum([]byte("the real content")), Optional: true},
	}
	dir := t.TempDir()

	// Offline: nothing is downloaded; each missing file is named with its
	// source and destination.
	code, out := runCmd(t, items, "-dir", dir, "-offline")
	if code != 1 || srv.hits.Load() != 0 {
		t.Fatalf("offline: code %d, %d requests\n%s", code, srv.hits.Load(), out)
	}
	for _, want := range []string{"missing", filepath.Join(dir, "lambada/lambada_test.jsonl"), srv.URL + "/lambada_test.jsonl",
		"the file wiki.test.raw inside it", "sha256 " + sum(plain), "3 file(s) missing", "DATA_DIR"} {
		if !strings.Contains(out, want) {
			t.Errorf("offline output lacks %q:\n%s", want, out)
		}
	}

	// Online: files arrive verified; the zip is fetched once for two members.
	code, out = runCmd(t, items, "-dir", dir)
	if code != 0 || srv.hits.Load() != 2 {
		t.Fatalf("fetch: code %d, %d requests\n%s", code, srv.hits.Load(), out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "w/wiki.test.raw")); string(b) != raw {
		t.Errorf("extracted %q", b)
	}
	if !strings.Contains(out, "unpinned, sha256 "+sum([]byte("v\n"))) {
		t.Errorf("unpinned hash not printed:\n%s", out)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".datafetch-archive*")); len(m) != 0 {
		t.Errorf("archive left behind: %v", m)
	}

	// Second run: all verified in place, no requests.
	code, out = runCmd(t, items, "-dir", dir, "-offline")
	if code != 0 || srv.hits.Load() != 2 || strings.Count(out, "ok ") != 3 {
		t.Fatalf("recheck: code %d\n%s", code, out)
	}

	// Optional items by name: a tar.gz member, and a download whose hash is
	// wrong, which is refused and not saved.
	code, out = runCmd(t, items, "-dir", dir, "-only", "plain,tampered")
	if code != 1 || !strings.Contains(out, "fetched   lambada/plain.txt") || !strings.Contains(out, "want "+sum([]byte("the real content"))) {
		t.Fatalf("optional: code %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "t.txt")); err == nil {
		t.Error("file with the wrong hash was saved")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "t.txt.part*")); len(m) != 0 {
		t.Errorf("partial download left: %v", m)
	}

	// A damaged file in place is reported, not overwritten.
	os.WriteFile(filepath.Join(dir, "lambada/lambada_test.jsonl"), []byte("damaged"), 0o644)
	code, out = runCmd(t, items, "-dir", dir, "-only", "lambada")
	if code != 1 || !strings.Contains(out, "BAD") || !strings.Contains(out, "delete it") {
		t.Errorf("damaged: code %d\n%s", code, out)
	}

	// Unreachable source: a clear failure with manual instructions.
	srv.Close()
	os.Remove(filepath.Join(dir, "lambada/lambada_test.jsonl"))
	code, out = runCmd(t, items, "-dir", dir, "-only", "lambada")
	if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "and save it as") {
		t.Errorf("unreachable: code %d\n%s", code, out)
	}
}

func TestSelectAndList(t *testing.T) {
	if code, out := runCmd(t, manifest, "-only", "nosuch"); code != 2 || !strings.Contains(out, `unknown item "nosuch"`) {
		t.Errorf("unknown item: %d %s", code, out)
	}
	code, out := runCmd(t, manifest, "-list")
	if code != 0 || !strings.Contains(out, "lambada_test.jsonl") || !strings.Contains(out, "(optional)") {
		t.Errorf("list: %d %s", code, out)
	}
	def, _ := selectItems(manifest, "", false)
	all, _ := selectItems(manifest, "", true)
	if len(def) >= len(all) || len(all) != len(manifest) {
		t.Errorf("default %d, all %d of %d", len(def), len(all), len(manifest))
	}
	for _, it := range manifest {
		if it.SHA256 != "" && len(it.SHA256) != 64 {
			t.Errorf("%s: bad pinned hash", it.Path)
		}
	}
}

// The pinned hashes match the reference copies where those exist.
func TestManifestMatchesReferenceData(t *testing.T) {
	ref := os.Getenv("DATA_DIR")
	if ref == "" {
		ref = filepath.Join("..", "shared", "data")
	}
	if !filepath.IsAbs(ref) {
		ref = filepath.Join("..", "..", ref) // relative to the repository root
	}
	if _, err := os.Stat(ref); err != nil {
		t.Skipf("no reference data at %s", ref)
	}
	n := 0
	for _, it := range manifest {
		if it.SHA256 == "" {
			continue
		}
		got, err := fileSHA256(filepath.Join(ref, it.Path))
		if err != nil {
			continue
		}
		n++
		if got != it.SHA256 {
			t.Errorf("%s: reference sha256 %s, manifest %s", it.Path, got, it.SHA256)
		}
	}
	if n < 5 {
		t.Errorf("only %d pinned files checked", n)
	}
}
