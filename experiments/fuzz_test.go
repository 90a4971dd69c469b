package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dlmlab/difflm/config"
)

// FuzzConfig: any YAML file and -set override give a config or an error
// naming the key or line, never a panic.
func FuzzConfig(f *testing.F) {
	for _, c := range []struct{ yaml, set string }{
		{"name: x\ntrain:\n  steps: 10\n", "train.lr=0.1"},
		{"name: x\ntrain:\n  setps: 10\n", "data.tokenizer=char"},
		{"sweep:\n  variants:\n    - name: a\n      set: [train.steps=3]\n", "sweep.seeds=[1,2]"},
		{"data: [1, 2]\n", "=x"},
		{"name: !!binary AAAA\n", "eval.gen_steps=[8,x]"},
		{"a: &a [*a]\n", "threads=-1"},
		{"\t", ""},
	} {
		f.Add(c.yaml, c.set)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml, set string) {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		var sets []string
		if set != "" {
			sets = []string{set}
		}
		_, _ = config.Load(path, sets, DefaultConfig())
	})
}
