package data

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeCache(t *testing.T, path string, width int, docs [][]int32) {
	t.Helper()
	w, err := createCache(path, width)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if err := w.write(d); err != nil {
			t.Fatal(err)
		}
		w.endDoc()
	}
	if err := w.commit(); err != nil {
		t.Fatal(err)
	}
}

func TestCacheRoundTrip(t *testing.T) {
	docs := [][]int32{{1, 2, 3}, {}, {50256, 0, 65535}, {7}}
	for _, width := range []int{2, 4} {
		path := filepath.Join(t.TempDir(), "c.bin")
		writeCache(t, path, width, docs)
		tk, err := openTokens(path)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Len() != 7 || tk.NumDocs() != 4 {
			t.Fatalf("width %d: len %d docs %d", width, tk.Len(), tk.NumDocs())
		}
		for d, want := range docs {
			s, e := tk.Span(d)
			var got []int32
			for i := s; i < e; i++ {
				got = append(got, tk.At(i))
			}
			if !slices.Equal(got, want) && len(want) > 0 {
				t.Errorf("width %d doc %d = %v, want %v", width, d, got, want)
			}
		}
		st, _ := os.Stat(path)
		if want := int64(headerBytes + 7*width + 4*8); st.Size() != want {
			t.Errorf("file size %d, want %d", st.Size(), want)
		}
		if err := tk.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A uint16 cache refuses ids that do not fit.
	w, _ := createCache(filepath.Join(t.TempDir(), "x.bin"), 2)
	if err := w.write([]int32{70000}); err == nil {
		t.Error("id 70000 written as uint16")
	}
	w.abort()
}

// Every kind of damage is detected and reported as errCorruptCache naming
// the file.
func TestCacheCorruption(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.bin")
	writeCache(t, good, 2, [][]int32{{1, 2, 3, 4, 5}, {6, 7}})
	orig, _ := os.ReadFile(good)
	for _, tc := range []struct {
		name, want string
		damage     func([]byte) []byte
	}{
		{"truncated", "truncated", func(b []byte) []byte { return b[:len(b)-3] }},
		{"extended", "truncated", func(b []byte) []byte { return append(b, 0) }},
		{"short", "shorter than the header", func(b []byte) []byte { return b[:10] }},
		{"flipped token", "checksum", func(b []byte) []byte { b[headerBytes+1] ^= 1; return b }},
		{"flipped end", "checksum", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
		{"magic", "bad magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"version", "version 9", func(b []byte) []byte { b[8] = 9; return b }},
		{"width", "width 3", func(b []byte) []byte { b[12] = 3; return b }},
		{"count", "truncated", func(b []byte) []byte { b[16]++; return b }},
	} {
		p := filepath.Join(dir, tc.name+".bin")
		if err := os.WriteFile(p, tc.damage(slices.Clone(orig)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := openTokens(p)
		if !errors.Is(err, errCorruptCache) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want errCorruptCache naming %s and %q", tc.name, err, p, tc.want)
		}
	}
}

// cachedTokens builds once, maps afterwards, and rebuilds a corrupt file
// with a warning that names it.
func TestCachedTokensRebuild(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)

	dir := t.TempDir()
	builds := 0
	build := func(w *cacheWriter) error {
		builds++
		if err := w.write([]int32{4, 5, 6}); err != nil {
			return err
		}
		w.endDoc()
		return nil
	}
	for range 2 {
		tk, _, err := cachedTokens(dir, "k", 2, build)
		if err != nil {
			t.Fatal(err)
		}
		tk.Close()
	}
	if builds != 1 {
		t.Fatalf("built %d times, want 1", builds)
	}
	path := filepath.Join(dir, "tokens-k.bin")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-5], 0o644)
	tk, hit, err := cachedTokens(dir, "k", 2, build)
	if err != nil || hit || builds != 2 || tk.Len() != 3 || tk.At(2) != 6 {
		t.Fatalf("rebuild: err %v hit %v builds %d", err, hit, builds)
	}
	tk.Close()
	if !strings.Contains(logs.String(), "token cache is corrupt") || !strings.Contains(logs.String(), path) {
		t.Errorf("no warning naming %s in log:\n%s", path, logs.String())
	}
	// A failed build leaves no file behind.
	_, _, err = cachedTokens(dir, "fail", 2, func(*cacheWriter) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("build error swallowed")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "tokens-fail*")); len(m) != 0 {
		t.Errorf("left %v behind", m)
	}
}
