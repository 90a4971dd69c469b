package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/results"
)

func TestSummaryBoundLine(t *testing.T) {
	char, err := data.NewVocab(data.TokChar, data.NormText8)
	if err != nil {
		t.Fatal(err)
	}
	gpt2, err := data.NewVocab(data.TokGPT2, data.NormNone)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(task, metric string, v float64) results.Evaluation {
		return results.Evaluation{Task: task, Metric: metric, Value: v, Stderr: math.NaN()}
	}
	for _, c := range []struct {
		name  string
		vocab *data.Vocab
		evals []results.Evaluation
		want  string
	}{
		{"char", char, []results.Evaluation{
			ev("valid", "ppl_bound", 8), ev("valid", "unigram_ppl", 16), ev("valid", "bpc", 3), ev("valid", "unigram_bpc", 4)},
			"valid: 3.000 bits per character (perplexity ≤ 8.00 per character) — 2.0× better than the unigram model (4.000 bpc, perplexity 16.00)"},
		{"bpe", gpt2, []results.Evaluation{
			ev("valid", "ppl_bound", 200), ev("valid", "unigram_ppl", 400), ev("valid", "bpc", 2.5)},
			"valid: perplexity ≤ 200.00 per token — 2.0× better than the unigram model (400.00)"},
		{"plateau", char, []results.Evaluation{
			ev("valid", "ppl_bound", 17), ev("valid", "unigram_ppl", 17.5), ev("valid", "bpc", 4.08), ev("valid", "unigram_bpc", 4.13)},
			"no better than the unigram model yet (4.130 bpc, perplexity 17.50)"},
		{"a generation row is not the bound", char, []results.Evaluation{
			{Task: "valid", Metric: "ppl_bound", Value: 1, Params: map[string]any{"steps": 4}}, ev("valid", "unigram_ppl", 16)},
			""},
	} {
		s := runSummary{vocab: c.vocab, evals: c.evals}
		got, ok := s.boundLine("valid")
		if c.want == "" {
			if ok {
				t.Errorf("%s: %q, want no line", c.name, got)
			}
			continue
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// TestDefaultRunSummary runs the built-in default as `make run` does
// (a few steps instead of 600) and checks what the summary shows and
// that the plot and report it names exist.
func TestDefaultRunSummary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	out := runCmd(t, bin, "-set", "out_dir="+dir, "-set", "data.dir="+dataDir(t), "-set", "data.cache_dir="+filepath.Join(dir, "cache"),
		"-set", "train.steps=4", "-set", "train.warmup=1", "-set", "train.batch_size=4", "-set", "eval.max_batches=1",
		"-set", "eval.zero_shot=[]", "-set", "eval.gen_steps=[8]", "-set", "eval.gen_samples=2", "-set", "sampling.steps=8",
		"-set", "threads=1")
	for _, want := range []string{
		"default: absorbing × mdlm on tinyshakespeare/input.txt (char)",
		"valid: ", "than the unigram model",
		"Text crystallising from masks (ancestral-cached, T = 8",
		"step    0 │ ▒▒▒▒",
		"Samples (ancestral-cached, T = 8)", "  1. ", "  2. ",
		"Infilling (ancestral-cached, T = 8)", "  given   │ ", "  filled  │ ", "  original│ ",
		"Generative perplexity: skipped — no AR reference",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, tail(out, 4000))
		}
	}
	for _, line := range strings.Split(out, "\n") {
		given, filled := strings.HasPrefix(line, "  given   │ "), strings.HasPrefix(line, "  filled  │ ")
		if n := strings.Count(line, "▒"); (given && n != 128/4) || (filled && n != 0) {
			t.Errorf("infill line %q: %d masked positions, want the middle quarter of 128 given, none filled", line, n)
		}
	}
	for _, f := range []string{"loss.png", "report.md"} {
		p := filepath.Join(dir, "default", "report", f)
		if _, err := os.Stat(p); err != nil || !strings.Contains(out, p) {
			t.Errorf("%s: %v (named in the summary: %v)", p, err, strings.Contains(out, p))
		}
	}
}
