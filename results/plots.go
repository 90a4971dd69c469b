package results

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// PlotOptions tune WritePlots. The zero value gives 16×10 cm figures, the
// "loss" metric for the loss curves and slog.Default for the log.
type PlotOptions struct {
	Width, Height vg.Length
	LossMetric    string
	Logger        *slog.Logger
}

func (o PlotOptions) withDefaults() PlotOptions {
	if o.Width == 0 {
		o.Width = 16 * vg.Centimeter
	}
	if o.Height == 0 {
		o.Height = 10 * vg.Centimeter
	}
	if o.LossMetric == "" {
		o.LossMetric = MetricLoss
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// figure is a plot to write, or the reason it was not drawn.
type figure struct {
	name   string // file name without extension
	plot   *plot.Plot
	legend *legend // drawn outside the data, right of it; nil: none, or inside
	skip   string  // non-empty: nothing to draw, and why
}

// WritePlots draws the comparison figures of the runs matching f into dir,
// each as PNG and SVG, and returns the files written:
//   - loss_<sweep>: training and validation loss against step, one line per
//     run and split;
//   - ppl_bound_<task>: perplexity bound per variant, bars with error bars;
//   - gen_ppl_vs_steps: generative perplexity against sampling steps (log2
//     axis), one line per variant and sampler;
//   - lambada_accuracy: LAMBADA last-word accuracy per variant;
//   - tokens_per_s_vs_steps: sampling throughput against steps.
//
// A figure without data is skipped and the reason logged, never written
// empty. Values are aggregated over seeds as in Report.
func WritePlots(s *Store, f RunFilter, dir string, opts PlotOptions) ([]string, error) {
	opts = opts.withDefaults()
	runs, err := s.Runs(f)
	if err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	if len(runs) == 0 {
		opts.Logger.Info("no plots: no runs match the filter", "filter", fmt.Sprintf("%+v", f))
		return nil, nil
	}
	obs, err := s.observations(runs)
	if err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	table := buildTable(runs, obs, nil)
	styles := stylesOf(runs)
	figs, err := lossFigures(s, runs, opts.LossMetric, styles)
	if err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	ppl, err := boundFigures(table, styles)
	if err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	figs = append(figs, ppl...)
	gen, errGen := stepsFigure(table, styles, "gen_ppl_vs_steps", MetricGenPPL, "Generative perplexity", "generative perplexity")
	ent, errEnt := stepsFigure(table, styles, "entropy_vs_steps", MetricEntropy, "Unigram entropy of samples", "entropy (nats)")
	acc, errAcc := accuracyFigure(table, styles)
	tps, errTPS := stepsFigure(table, styles, "tokens_per_s_vs_steps", MetricTokensPerS, "Sampling throughput", "tokens / s")
	if err := errors.Join(errGen, errEnt, errAcc, errTPS); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	figs = append(figs, gen, ent, acc, tps)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	var files []string
	var errs []error
	for _, fig := range figs {
		if fig.plot == nil {
			opts.Logger.Info("plot skipped", "plot", fig.name, "reason", fig.skip)
			continue
		}
		for _, ext := range []string{".png", ".svg"} {
			path := filepath.Join(dir, fig.name+ext)
			if err := saveFigure(fig, opts.Width, opts.Height, path); err != nil {
				errs = append(errs, fmt.Errorf("save %s: %w", path, err))
				continue
			}
			files = append(files, path)
		}
	}
	return files, errors.Join(errs...)
}

// slug makes a string safe as a file name part.
func slug(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}
