package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/results"
)

// reportDir is where report.md and the plots go.
func reportDir(cfg *Config, o options) string {
	if o.out != "" {
		return o.out
	}
	name := "report"
	if s := reportSweep(cfg, o); s != "" {
		name = filepath.Join("report", s)
	}
	return filepath.Join(cfg.OutDir, name)
}

// reportSweep is the sweep to report on: -sweep, else the config's own.
func reportSweep(cfg *Config, o options) string {
	if o.sweep != "" {
		return o.sweep
	}
	return cfg.Sweep.Name
}

func openStore(cfg *Config) (*results.Store, error) {
	p := dbPath(cfg)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("results database %s: %w (run an experiment first, or pass -db)", p, err)
	}
	return results.Open(p)
}

// report prints the comparison table (variants × metrics, ± stderr or seed
// spread) and writes it as Markdown, followed by what the runs cost; with
// -doc it also replaces the generated block of a hand-written document.
func report(cfg *Config, o options) error {
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	path, err := writeReport(store, cfg, results.RunFilter{Sweep: reportSweep(cfg, o)}, reportDir(cfg, o), o.doc, os.Stdout)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", path)
	return nil
}

// writeReport writes dir/report.md for the runs of filter (and, when doc
// is set, that document's generated block), printing the same to out.
func writeReport(store *results.Store, cfg *Config, filter results.RunFilter, dir, doc string, out io.Writer) (string, error) {
	tab, err := results.Report(store, filter, headline(cfg))
	if err != nil {
		return "", err
	}
	runs, err := store.Runs(filter)
	if err != nil {
		return "", err
	}
	if err := tab.WriteText(out); err != nil {
		return "", err
	}
	var md bytes.Buffer
	if err := tab.WriteMarkdown(&md); err != nil {
		return "", err
	}
	unk, err := corpusNotes(store, runs)
	if err != nil {
		return "", err
	}
	md.WriteString("\n" + runCosts(runs) + unk)
	fmt.Fprint(out, "\n"+runCosts(runs)+unk)
	if text, mdt, err := termsSection(store, filter, runs); err != nil {
		return "", err
	} else if text != "" {
		fmt.Fprint(out, text)
		md.WriteString(mdt)
	}
	if text, mdt, err := protocolSection(store, filter, cfg.Eval.GenSteps); err != nil {
		return "", err
	} else if text != "" {
		fmt.Fprint(out, text)
		md.WriteString(mdt)
	}
	if cfg.Report.Reference != "" {
		text, mdp, err := pairedSection(store, runs, cfg)
		if err != nil {
			return "", err
		}
		fmt.Fprint(out, text)
		md.WriteString(mdp)
	}
	if doc != "" {
		if err := spliceDoc(doc, md.String()); err != nil {
			return "", err
		}
		fmt.Fprintln(os.Stderr, "updated", doc)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "report.md")
	if err := os.WriteFile(path, md.Bytes(), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// runCosts says how many runs the table covers, how long they took (mean
// wall time per run of each variant, from registration to finish, resumes
// included) and the span from the first start to the last finish.
func runCosts(runs []results.Run) string {
	var b strings.Builder
	var first, last time.Time
	per := map[string][]time.Duration{}
	var order []string
	finished := 0
	for _, r := range runs {
		if r.Status != results.StatusFinished {
			continue
		}
		finished++
		if first.IsZero() || r.StartedAt.Before(first) {
			first = r.StartedAt
		}
		if r.FinishedAt.After(last) {
			last = r.FinishedAt
		}
		if _, ok := per[r.Label()]; !ok {
			order = append(order, r.Label())
		}
		per[r.Label()] = append(per[r.Label()], r.FinishedAt.Sub(r.StartedAt))
	}
	fmt.Fprintf(&b, "%d of %d runs finished", finished, len(runs))
	if finished == 0 {
		return b.String() + ".\n"
	}
	fmt.Fprintf(&b, ", from %s to %s (%s of wall time). Minutes per run (train + eval + sampling):",
		first.UTC().Format("2006-01-02 15:04"), last.UTC().Format("15:04 MST"), last.Sub(first).Round(time.Minute))
	for _, v := range order {
		var sum time.Duration
		for _, d := range per[v] {
			sum += d
		}
		fmt.Fprintf(&b, " %s %.1f;", v, (sum / time.Duration(len(per[v]))).Minutes())
	}
	return strings.TrimSuffix(b.String(), ";") + ".\n"
}

// corpusNotes states, per task, what every run on one vocabulary shares
// (the mean is over the runs that recorded it): the share of scored tokens
// that are UNK, the one token a trimmed vocabulary maps every other word
// to, and the perplexity of the training split's unigram model on the same
// tokens, the level of a model that uses no context. Nothing for a quantity
// no run recorded.
func corpusNotes(store *results.Store, runs []results.Run) (string, error) {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	evs, err := store.Evaluations(ids)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, q := range []struct {
		metric, intro string
		format        func(float64) string
	}{
		{results.MetricUnigramPPL, "Unigram model of the training split (add-½; no context) on the same tokens, perplexity:",
			func(v float64) string { return fmt.Sprintf("%.1f", v) }},
		{results.MetricUnigramBPC, "The same unigram model in bits per character:",
			func(v float64) string { return fmt.Sprintf("%.3f", v) }},
		{results.MetricUNKShare, "Share of scored tokens that are UNK (outside the trimmed vocabulary):",
			func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }},
	} {
		sum, n := map[string]float64{}, map[string]int{}
		var tasks []string
		for _, e := range evs {
			if e.Metric != q.metric {
				continue
			}
			if n[e.Task] == 0 {
				tasks = append(tasks, e.Task)
			}
			sum[e.Task] += e.Value
			n[e.Task]++
		}
		if len(tasks) == 0 {
			continue
		}
		b.WriteString("\n" + q.intro)
		for i, t := range tasks {
			sep := ";"
			if i == len(tasks)-1 {
				sep = ".\n"
			}
			fmt.Fprintf(&b, " %s %s%s", t, q.format(sum[t]/float64(n[t])), sep)
		}
	}
	return b.String(), nil
}

// Markers of the generated block in a document updated with -doc.
const (
	docBegin = "<!-- report:begin (generated by -mode report -doc; edits inside are overwritten) -->"
	docEnd   = "<!-- report:end -->"
)

// spliceDoc replaces what lies between docBegin and docEnd in path with
// block, so prose around a table stays hand-written while the table
// itself never is.
func spliceDoc(path, block string) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-doc: %w", err)
	}
	lines := strings.SplitAfter(string(text), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == docBegin })
	j := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == docEnd })
	if i < 0 || j < i {
		return fmt.Errorf("-doc %s: needs a line %q followed by a line %q around the generated block", path, docBegin, docEnd)
	}
	out := strings.Join(lines[:i+1], "") + block + strings.Join(lines[j:], "")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// boundMetric is the unit the comparison states bounds in: bits per
// character for character and byte runs (the unit of the text8 papers),
// perplexity for BPE (the unit of the OpenWebText and LM1B papers).
func boundMetric(cfg *Config) string {
	if cfg.Data.Tokenizer != data.TokGPT2 {
		return results.MetricBPC
	}
	return results.MetricPPLBound
}

// pairedSection compares every variant's valid and test bounds with
// report.reference's on the same sequences (finished runs only), in the
// run's unit: per token for BPE, per character otherwise. It returns the
// terminal text and the Markdown.
func pairedSection(store *results.Store, runs []results.Run, cfg *Config) (string, string, error) {
	var done []results.Run
	for _, r := range runs {
		if r.Status == results.StatusFinished {
			done = append(done, r)
		}
	}
	unit := results.UnitNats
	if boundMetric(cfg) == results.MetricBPC {
		unit = results.UnitBPC
	}
	var text, md strings.Builder
	for _, task := range []string{results.TaskValid, "test"} {
		diffs, err := results.Paired(store, done, cfg.Report.Reference, task, unit)
		if errors.Is(err, results.ErrNoReference) {
			note := fmt.Sprintf("\nNo paired comparison on %s yet: no finished run of %s (report.reference) has per-sequence bounds.\n", task, cfg.Report.Reference)
			text.WriteString(note)
			md.WriteString(note)
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("report.reference: %w", err)
		}
		grid := results.PairedGrid(diffs, cfg.Report.Reference, task, unit)
		text.WriteString("\n" + results.PairedText(grid))
		md.WriteString("\n" + results.PairedMarkdown(grid))
	}
	text.WriteString("\n" + results.PairedFootnote + "\n")
	md.WriteString("\n" + results.PairedFootnote + "\n")
	return text.String(), md.String(), nil
}

// headline picks the table's columns: the bounds (in boundMetric's unit),
// LAMBADA, and generation at every step count (gen ppl) and at the largest
// (entropy, tokens/s). Each variant samples with its own sampler, so
// samplers share columns; the sampler of each run is in its config and
// samples.
func headline(cfg *Config) results.ReportOptions {
	bm := boundMetric(cfg)
	cols := []results.ColumnFilter{
		{Task: results.TaskValid, Metric: bm},
		{Task: "test", Metric: bm},
	}
	for _, zs := range cfg.Eval.ZeroShot {
		cols = append(cols, results.ColumnFilter{Task: zs.Name, Metric: bm})
	}
	cols = append(cols,
		results.ColumnFilter{Task: results.TaskLAMBADA, Metric: bm},
		results.ColumnFilter{Task: results.TaskLAMBADA, Metric: results.MetricAccuracy},
		results.ColumnFilter{Task: results.TaskGen, Metric: results.MetricGenPPL},
	)
	if n := len(cfg.Eval.GenSteps); n > 0 {
		last := map[string]any{results.ParamSteps: cfg.Eval.GenSteps[n-1]}
		cols = append(cols,
			results.ColumnFilter{Task: results.TaskGen, Metric: eval.MetricEntropy, Params: last},
			results.ColumnFilter{Task: results.TaskGen, Metric: results.MetricTokensPerS, Params: last})
	}
	return results.ReportOptions{Columns: cols, MergeParams: []string{results.ParamSampler}}
}

// plots writes every comparison figure (PNG and SVG) the data allows.
func plots(cfg *Config, o options) error {
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	files, err := results.WritePlots(store, results.RunFilter{Sweep: reportSweep(cfg, o)}, reportDir(cfg, o), results.PlotOptions{})
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Println(f)
	}
	return nil
}
