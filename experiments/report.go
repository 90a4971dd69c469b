package main

import (
	"fmt"
	"os"
	"path/filepath"

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
// spread) and writes it as Markdown.
func report(cfg *Config, o options) error {
	store, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	tab, err := results.Report(store, results.RunFilter{Sweep: reportSweep(cfg, o)}, headline(cfg))
	if err != nil {
		return err
	}
	if err := tab.WriteText(os.Stdout); err != nil {
		return err
	}
	dir := reportDir(cfg, o)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "report.md")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := tab.WriteMarkdown(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", path)
	return nil
}

// headline picks the table's columns: the perplexity bounds, LAMBADA, and
// generation at every step count (gen ppl) and at the largest (entropy,
// tokens/s). Each variant samples with its own sampler, so samplers share
// columns; the sampler of each run is in its config and samples.
func headline(cfg *Config) results.ReportOptions {
	cols := []results.ColumnFilter{
		{Task: results.TaskValid, Metric: results.MetricPPLBound},
		{Task: "test", Metric: results.MetricPPLBound},
	}
	for _, zs := range cfg.Eval.ZeroShot {
		cols = append(cols, results.ColumnFilter{Task: zs.Name, Metric: results.MetricPPLBound})
	}
	cols = append(cols,
		results.ColumnFilter{Task: results.TaskLAMBADA, Metric: results.MetricPPLBound},
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
