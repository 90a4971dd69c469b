package eval

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/torchx"
)

// A zero-shot corpus is read with the run's vocabulary (here trimmed, so
// words it lacks become UNK), each document followed by EOS and packed into
// the run's blocks: under fixed next-token probabilities the bound is the
// mean −log p over exactly those ids.
func TestZeroShotBound(t *testing.T) {
	torchx.Lock()
	dir := t.TempDir()
	text := "the cat sat on the mat and the dog sat on the log, said the cat to the dog"
	if err := os.WriteFile(filepath.Join(dir, "zs.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// Trimmed on other text than the corpus's, so that a vocabulary
	// rebuilt from the corpus would differ.
	vocab := trimmedVocab(t, 5, "a dog, a log, a mat: the dog and the log on the mat")
	v := vocab.Size()
	p := make([]float64, v)
	for i := range p {
		p[i] = float64(i+1) / float64(v*(v+1)/2)
	}
	runData := data.DefaultConfig()
	runData.Dir, runData.CacheDir, runData.SeqLen = dir, filepath.Join(dir, "cache"), 8
	runData.Train = []string{"train-corpus-not-read.txt"}
	m := Model{Net: fixedNet(p), Objective: objective(t, "ar", nil, v, nil), SeqLen: 8}
	cfg := DefaultConfig()
	cfg.BatchSize = 2
	res, err := ZeroShotBound(context.Background(), m, cfg, runData, vocab, ZeroShot{Name: "toy", Paths: []string{"zs.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := append(vocab.Encode(text), vocab.EOS())
	nats, unk := 0.0, 0
	for _, id := range ids {
		nats -= math.Log(p[id])
		if id == vocab.UNK() {
			unk++
		}
	}
	if unk == 0 {
		t.Fatal("the trimmed vocabulary keeps every word: the test would not see a wrong vocabulary")
	}
	if res.Tokens != int64(len(ids)) || math.Abs(res.NLL-nats/float64(len(ids))) > 1e-9 {
		t.Errorf("bound %.9f over %d tokens, want %.9f over %d", res.NLL, res.Tokens, nats/float64(len(ids)), len(ids))
	}
}
