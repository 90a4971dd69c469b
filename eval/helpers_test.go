package eval

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
)

// TestMain silences progress and model logs, which would interleave with
// test output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	os.Exit(m.Run())
}

// wobble is a fixed, irregular perturbation of logits: a model that is
// wrong in a reproducible way.
func wobble(x []int64, i, v int) float64 {
	c := 0.0
	for _, s := range x {
		c = c*7 + float64(s)
	}
	return 0.7 * math.Sin(13*c+5*float64(i)+3*float64(v)+1)
}

// denoiser is the toy's exact clean-token model for an absorbing process
// (whose marginals do not depend on σ > 0), optionally wobbled.
func denoiser(ex *toydist.Exact, wobbly bool) *toydist.TableNet {
	return &toydist.TableNet{Out: ex.D.V, Fn: func(x []int64, _ float64) [][]float64 {
		p := ex.X0Marginals(x, 1)
		out := make([][]float64, len(p))
		for i := range p {
			out[i] = make([]float64, len(p[i]))
			for v, pv := range p[i] {
				out[i][v] = math.Log(max(pv, 1e-300))
				if wobbly {
					out[i][v] += wobble(x, i, v)
				}
			}
		}
		return out
	}}
}

// fixedNet outputs the same logits log p at every position, whatever its
// input: a model whose NLL is known in closed form.
func fixedNet(p []float64) *toydist.TableNet {
	logits := make([]float64, len(p))
	for v, pv := range p {
		logits[v] = math.Log(pv)
	}
	return &toydist.TableNet{Out: len(p), Fn: func(x []int64, _ float64) [][]float64 {
		out := make([][]float64, len(x))
		for i := range out {
			out[i] = logits
		}
		return out
	}}
}

// objective builds a losses objective from a config edit.
func objective(t *testing.T, name string, proc forward.Process, v int, edit func(*losses.Config)) losses.Objective {
	t.Helper()
	cfg := losses.DefaultConfig()
	cfg.Name = name
	if edit != nil {
		edit(&cfg)
	}
	obj, err := losses.New(cfg, proc, v)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// rowBatches serves rows of equal length, all scored, as Batches.
func rowBatches(rows [][]int64, batchSize int) *blocks {
	b := &blocks{size: batchSize}
	for _, r := range rows {
		mask := make([]float32, len(r))
		for j := range mask {
			mask[j] = 1
		}
		b.tokens, b.mask = append(b.tokens, r), append(b.mask, mask)
	}
	return b
}

// sharedFile is a file of ../shared/data (or $DATA_DIR); the test is
// skipped when it is missing.
func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("DATA_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "data")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("dataset file missing: %v", err)
	}
	return p
}

// trimmedVocab is a GPT-2 vocabulary trimmed to the tokens of texts (all
// of them kept when k = 0, else the k most frequent): a small V for tests.
func trimmedVocab(t *testing.T, k int, texts ...string) *data.Vocab {
	t.Helper()
	gpt2, err := data.GPT2Vocab()
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, gpt2.Size())
	distinct := 0
	for _, s := range texts {
		for _, id := range gpt2.Encode(s) {
			if counts[id] == 0 {
				distinct++
			}
			counts[id]++
		}
	}
	if k == 0 {
		k = distinct
	}
	v, err := data.TrimVocab(counts, k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
