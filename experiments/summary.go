package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/sampling"
)

// The end-of-run summary: what a person wants to see after `make run`,
// printed to stdout once a run has trained, evaluated and sampled — the
// bound beside the unigram model in words, the filmstrip of text
// crystallising from masks, a few samples, an infilled passage, the
// generative perplexity (or why there is none) and where the plot and
// the report went. Everything in it is read back from the results
// database or made by the trained model; nothing is computed twice.

// genOutcome is what sampleAndScore keeps of its last (largest) step
// count for the summary.
type genOutcome struct {
	sampler string
	steps   int
	texts   []string
	film    *sampling.Filmstrip
}

// infillOutcome is one validation passage with a span masked and filled.
type infillOutcome struct {
	original, masked, filled string
	sampler                  string
	steps                    int
}

// summaryTokens decodes ids one token each, for lines a terminal shows:
// EOS as ¶ and a newline as ↵, so a passage stays on one line and the
// frames of a filmstrip stay aligned.
func summaryTokens(v *data.Vocab, ids []int, masked func(i int) bool) string {
	var b strings.Builder
	for i, id := range ids {
		switch {
		case masked != nil && masked(i):
			b.WriteString("▒")
		case id == v.EOS():
			b.WriteString("¶")
		default:
			b.WriteString(strings.ReplaceAll(v.Decode([]int{id}), "\n", "↵"))
		}
	}
	return b.String()
}

// infillExample masks the middle quarter of the first validation passage
// and lets the run's sampler fill it, seeing the text on both sides. An AR
// model sees only the left, so it has no such example (reason says why).
func (m *method) infillExample(ctx context.Context, cfg *Config, corpus *data.Corpus) (out *infillOutcome, reason string, err error) {
	if cfg.Objective.Name == "ar" {
		return nil, "an autoregressive model sees only the text to its left", nil
	}
	if corpus.Valid == nil {
		return nil, "the corpus has no validation split to take a passage from", nil
	}
	batches, err := corpus.EvalBatches(corpus.Valid, 1)
	if err != nil {
		return nil, "", err
	}
	b, err := batches.Next()
	if err != nil {
		return nil, "", fmt.Errorf("infill example: first validation passage: %w", err)
	}
	L := b.L
	lo, hi := 3*L/8, 5*L/8
	tmpl := sampling.Template{Tokens: make([]int, L), Given: make([]bool, L)}
	for i := range L {
		tmpl.Tokens[i], tmpl.Given[i] = int(b.Tokens[i]), i < lo || i >= hi
	}
	name := cfg.Sampling.Sampler
	smp, err := sampling.New(name, cfg.Sampling, m.proc, sampling.Net{Model: m.net, Objective: m.obj, Device: m.dev})
	if err != nil {
		return nil, "", err
	}
	req := cfg.Sampling.Request(0, int64(cfg.Seed))
	req.N, req.Template = 1, tmpl
	res, err := smp.Generate(ctx, req)
	if err != nil {
		return nil, "", fmt.Errorf("infill example: %w", err)
	}
	inSpan := func(i int) bool { return i >= lo && i < hi }
	v := corpus.Vocab
	return &infillOutcome{
		original: summaryTokens(v, tmpl.Tokens, nil),
		masked:   summaryTokens(v, tmpl.Tokens, inSpan),
		filled:   summaryTokens(v, res.Tokens[0], nil),
		sampler:  name, steps: req.Steps,
	}, "", nil
}

// runSummary is everything the summary prints.
type runSummary struct {
	name, method, data string
	elapsed            time.Duration
	evals              []results.Evaluation
	gen                *genOutcome
	infill             *infillOutcome
	infillSkipped      string
	arReference        string
	vocab              *data.Vocab
	lossPlot, report   string
}

// find is the run-level evaluation task/metric (no params), if recorded.
func (s *runSummary) find(task, metric string) (results.Evaluation, bool) {
	for _, e := range s.evals {
		if e.Task == task && e.Metric == metric && len(e.Params) == 0 && !math.IsNaN(e.Value) {
			return e, true
		}
	}
	return results.Evaluation{}, false
}

// boundLine says the bound on one split beside the unigram model, in words.
func (s *runSummary) boundLine(task string) (string, bool) {
	ppl, ok := s.find(task, results.MetricPPLBound)
	uni, uok := s.find(task, results.MetricUnigramPPL)
	if !ok || !uok {
		return "", false
	}
	value := fmt.Sprintf("perplexity ≤ %s per token", num(ppl.Value))
	uvalue := num(uni.Value)
	if bpc, ok := s.find(task, results.MetricBPC); ok && s.vocab.Tokenizer() != data.TokGPT2 {
		ubpc, _ := s.find(task, results.MetricUnigramBPC)
		value = fmt.Sprintf("%.3f bits per character (perplexity ≤ %s per character)", bpc.Value, num(ppl.Value))
		uvalue = fmt.Sprintf("%.3f bpc, perplexity %s", ubpc.Value, num(uni.Value))
	}
	ratio := uni.Value / ppl.Value
	verdict := fmt.Sprintf("%.1f× better than the unigram model (%s)", ratio, uvalue)
	if ratio < 1.05 {
		verdict = fmt.Sprintf("no better than the unigram model yet (%s): train longer, e.g. -set train.steps=…", uvalue)
	}
	return fmt.Sprintf("%-5s %s — %s", task+":", value, verdict), true
}

func (s *runSummary) write(w io.Writer) {
	rule := strings.Repeat("─", 72)
	fmt.Fprintf(w, "\n%s\n%s: %s on %s, %s\n%s\n", rule, s.name, s.method, s.data, s.elapsed.Round(time.Second), rule)
	fmt.Fprintln(w, "What it learned (the diffusion bound is an upper bound on perplexity):")
	printed := false
	for _, task := range []string{results.TaskValid, "test"} {
		if line, ok := s.boundLine(task); ok {
			fmt.Fprintln(w, "  "+line)
			printed = true
		}
	}
	if !printed {
		fmt.Fprintln(w, "  no bound recorded (the corpus has no validation or test split)")
	}
	if g := s.gen; g != nil {
		if g.film != nil && len(g.film.Frames) > 1 {
			if g.sampler == "ddpm" {
				fmt.Fprintf(w, "\nText sharpening out of noise (%s, T = %d; each step's nearest tokens of x̂0):\n", g.sampler, g.steps)
			} else {
				fmt.Fprintf(w, "\nText crystallising from masks (%s, T = %d; ▒ = still masked):\n", g.sampler, g.steps)
			}
			for _, fr := range pickFrames(g.film.Frames, 7) {
				line := summaryTokens(s.vocab, fr.Tokens, func(i int) bool { return fr.Tokens[i] == g.film.Pending })
				fmt.Fprintf(w, "  step %4d │ %s\n", fr.Step, line)
			}
		}
		fmt.Fprintf(w, "\nSamples (%s, T = %d):\n", g.sampler, g.steps)
		for i, t := range g.texts[:min(3, len(g.texts))] {
			fmt.Fprintf(w, "  %d. %s\n", i+1, oneLine(t, 160))
		}
	}
	if f := s.infill; f != nil {
		fmt.Fprintf(w, "\nInfilling (%s, T = %d) a passage of the validation split:\n", f.sampler, f.steps)
		fmt.Fprintf(w, "  given   │ %s\n  filled  │ %s\n  original│ %s\n", f.masked, f.filled, f.original)
	} else if s.infillSkipped != "" {
		fmt.Fprintf(w, "\nInfilling: skipped (%s).\n", s.infillSkipped)
	}
	fmt.Fprintln(w)
	if s.arReference == "" {
		fmt.Fprintln(w, "Generative perplexity: skipped — no AR reference (eval.ar_reference) is configured. Train one")
		fmt.Fprintln(w, "  (go run ./experiments -cfg ar) and add -set eval.ar_reference=runs/ar/model.safetensors.")
	} else {
		var parts []string
		for _, e := range s.evals {
			if e.Task == results.TaskGen && e.Metric == results.MetricGenPPL && !math.IsNaN(e.Value) {
				parts = append(parts, fmt.Sprintf("T=%v: %.1f", e.Params[results.ParamSteps], e.Value))
			}
		}
		fmt.Fprintf(w, "Generative perplexity under %s: %s\n", s.arReference, strings.Join(parts, ", "))
	}
	if s.lossPlot != "" {
		fmt.Fprintln(w, "Loss plot:", s.lossPlot)
	}
	if s.report != "" {
		fmt.Fprintln(w, "Report:   ", s.report)
	}
	fmt.Fprintln(w, rule)
}

// num prints a perplexity: two decimals, or three digits when huge (an
// untrained continuous model's bound).
func num(v float64) string {
	if math.Abs(v) < 1e5 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// pickFrames keeps about n frames, always the first and the last.
func pickFrames(frames []sampling.Frame, n int) []sampling.Frame {
	if len(frames) <= n {
		return frames
	}
	out := make([]sampling.Frame, 0, n)
	for k := range n {
		out = append(out, frames[k*(len(frames)-1)/(n-1)])
	}
	return out
}

// oneLine puts a sample on one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "<|endoftext|>", "¶"), "\n", "↵")
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// summarize writes the run's plots and report into its folder and prints
// the summary.
func summarize(w io.Writer, store *results.Store, cfg *Config, runID int64, vocab *data.Vocab, began time.Time,
	gen *genOutcome, infill *infillOutcome, infillSkipped string) error {
	evs, err := store.Evaluations([]int64{runID})
	if err != nil {
		return err
	}
	dir := filepath.Join(runDir(cfg), "report")
	filter := results.RunFilter{Names: []string{cfg.Name}}
	files, err := results.WritePlots(store, filter, dir, results.PlotOptions{})
	if err != nil {
		return err
	}
	rep, err := writeReport(store, cfg, filter, dir, "", io.Discard)
	if err != nil {
		return err
	}
	s := runSummary{
		name: cfg.Name, method: cfg.Process.Name + " × " + cfg.Objective.Name,
		data:    strings.Join(cfg.Data.Train, ", ") + " (" + vocab.Tokenizer() + ")",
		elapsed: time.Since(began), evals: evs, gen: gen, infill: infill, infillSkipped: infillSkipped,
		arReference: cfg.Eval.ARReference, vocab: vocab, report: rep,
	}
	switch cfg.Process.Name {
	case "none":
		s.method = "autoregressive"
	case "gaussian":
		s.method = "embed-and-diffuse (gaussian × vdm)"
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "loss") && strings.HasSuffix(f, ".png") {
			s.lossPlot = f
		}
	}
	s.write(w)
	return nil
}
