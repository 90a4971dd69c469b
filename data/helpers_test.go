package data

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedData is the folder of real datasets: $DATA_DIR, else ../shared/data,
// relative paths taken from the repository root (found by walking up to
// go.mod). Tests that need it are skipped, with the reason, where it is
// absent.
func sharedData(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	d := os.Getenv("DATA_DIR")
	if d == "" {
		d = filepath.Join("..", "shared", "data")
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(dir, d) // relative to the repository root
	}
	if _, err := os.Stat(d); err != nil {
		t.Skipf("real datasets not found at %s (set DATA_DIR): %v", d, err)
	}
	return d
}

func sharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(sharedData(t), rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("dataset file missing: %v", err)
	}
	return p
}

func gpt2(t testing.TB) *Vocab {
	t.Helper()
	v, err := GPT2Vocab()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// memTokens builds an in-memory Tokens from documents (uint32 storage).
func memTokens(docs [][]int32) *tokenFile {
	t := &tokenFile{u32: []uint32{}}
	for _, d := range docs {
		for _, id := range d {
			t.u32 = append(t.u32, uint32(id))
		}
		t.ends = append(t.ends, int64(len(t.u32)))
	}
	return t
}

func ints(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}
