package results

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// boundFigures draws one figure per bound column (perplexity bound or bits
// per character): tasks differ in scale (LAMBADA's bound is several times
// the validation one), so they do not share an axis.
func boundFigures(t *Table, styles map[string]variantStyle) ([]figure, error) {
	var figs []figure
	for i, c := range t.Columns {
		var name, title, ylabel, unigram string
		switch c.Metric {
		case MetricPPLBound:
			name, title, ylabel, unigram = "ppl_bound_", "Perplexity bound — ", "perplexity bound", MetricUnigramPPL
		case MetricBPC:
			name, title, ylabel, unigram = "bpc_", "Bits per character (bound) — ", "bits per character", MetricUnigramBPC
		default:
			continue
		}
		fig, err := dotFigure(t, i, styles, unigramLevel(t, c.Task, unigram), name+columnSlug(c), title+columnTitle(c), ylabel)
		if err != nil {
			return nil, err
		}
		figs = append(figs, fig)
	}
	if len(figs) == 0 {
		figs = append(figs, figure{name: "ppl_bound", skip: "no " + MetricPPLBound + " or " + MetricBPC + " evaluation"})
	}
	return figs, nil
}

// unigramLevel is the mean over variants of the unigram model's metric on
// task (every variant scores the same tokens), NaN when none has it.
func unigramLevel(t *Table, task, metric string) float64 {
	for i, c := range t.Columns {
		if c.Task != task || c.Metric != metric || len(c.Params) > 0 {
			continue
		}
		sum, n := 0.0, 0
		for _, r := range t.Rows {
			if cell := r.Cells[i]; cell.OK && !math.IsNaN(cell.Value) {
				sum += cell.Value
				n++
			}
		}
		if n > 0 {
			return sum / float64(n)
		}
	}
	return math.NaN()
}

// dotFigure draws column col as one point per variant with an error bar of
// the cell's ±, coloured by process, shaped by objective, and the unigram
// level (when finite) as a dashed grey line: a bound near it means the
// model has learned token frequencies and little context. Points, not
// bars: differences of a few percent matter here, and bars from zero hide
// them. Variants without a finite value are left out.
func dotFigure(t *Table, col int, styles map[string]variantStyle, level float64, name, title, ylabel string) (figure, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	leg := newLegend()
	type dot struct {
		x, y, e float64
		st      variantStyle
		variant string
	}
	var dots []dot
	var names []string
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range t.Rows {
		c := r.Cells[col]
		if !c.OK || math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
			continue
		}
		e := 0.0
		if c.Err > 0 && !math.IsInf(c.Err, 0) {
			e = c.Err
		}
		dots = append(dots, dot{float64(len(names)), c.Value, e, style(styles, r.Variant), r.Variant})
		names = append(names, r.Variant)
		lo, hi = min(lo, c.Value-e), max(hi, c.Value+e)
	}
	if len(names) == 0 {
		return figure{name: name, skip: fmt.Sprintf("no finite value of %s", t.Columns[col].Label())}, nil
	}
	hasLevel := !math.IsNaN(level) && !math.IsInf(level, 0)
	if hasLevel {
		lo, hi = min(lo, level), max(hi, level)
	}
	// Perplexities spanning more than a factor of 20 (a bound far above
	// the others) go on a log axis, where a factor reads the same
	// everywhere; an error bar reaching below the axis is cut there.
	logY := false
	if t.Columns[col].Metric == MetricPPLBound {
		least := math.Inf(1)
		for _, d := range dots {
			least = min(least, d.y)
		}
		if hasLevel {
			least = min(least, level)
		}
		if least > 0 && hi/least > 20 {
			logY = true
			lo, hi = least/1.5, hi*1.5
			p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		}
	}
	for _, d := range dots {
		sc, err := plotter.NewScatter(plotter.XYs{{X: d.x, Y: d.y}})
		if err != nil {
			return figure{}, fmt.Errorf("%s point %s: %w", name, d.variant, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: d.st.color, Radius: vg.Points(4), Shape: d.st.shape}
		p.Add(sc)
		if d.e > 0 {
			low := d.e
			if logY && d.y-low < lo {
				low = d.y - lo
			}
			eb, err := plotter.NewYErrorBars(errPoints{plotter.XYs{{X: d.x, Y: d.y}}, plotter.YErrors{{Low: low, High: d.e}}})
			if err != nil {
				return figure{}, fmt.Errorf("%s error bar %s: %w", name, d.variant, err)
			}
			eb.Color, eb.LineStyle.Width = d.st.color, 1.2
			p.Add(eb)
		}
		leg.Add(d.variant, sc)
	}
	if hasLevel {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.75, Y: level}, {X: float64(len(names)) - 0.25, Y: level}})
		if err != nil {
			return figure{}, fmt.Errorf("%s unigram level: %w", name, err)
		}
		l.Color, l.Width, l.Dashes = referenceColor(), 1.2, []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(l)
		leg.Add(fmt.Sprintf("unigram (no context): %.3g", level), l)
	}
	if logY {
		p.Y.Min, p.Y.Max = lo, hi
		p.Y.Label.Text = ylabel + " (log scale)"
	} else {
		pad := 0.08 * (hi - lo)
		if pad == 0 {
			pad = 0.05 * math.Abs(hi)
		}
		p.Y.Min, p.Y.Max = lo-pad, hi+pad
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.75, float64(len(names))-0.25 // keep edge points off the frame
	if len(names) > 4 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight // the label ends under its point
	}
	p.Add(plotter.NewGrid())
	return figure{name: name, plot: p, legend: leg}, nil
}

// accuracyFigure draws LAMBADA accuracy per variant. With several lambada
// accuracy columns (different params) the first in table order is drawn.
func accuracyFigure(t *Table, styles map[string]variantStyle) (figure, error) {
	for i, c := range t.Columns {
		if c.Task == TaskLAMBADA && c.Metric == MetricAccuracy {
			return dotFigure(t, i, styles, math.NaN(), "lambada_accuracy", "LAMBADA last-word accuracy", "accuracy")
		}
	}
	return figure{name: "lambada_accuracy", skip: "no " + TaskLAMBADA + "/" + MetricAccuracy + " evaluation"}, nil
}

// columnTitle is the column label without its metric, for a figure whose
// title already names the metric.
func columnTitle(c Column) string {
	return c.Task + strings.TrimPrefix(c.Label(), c.Task+"/"+c.Metric)
}

// columnSlug names a column in a file name: the task, plus the params when
// there are any.
func columnSlug(c Column) string {
	return slug(columnTitle(c))
}

// errPoints feeds gonum's error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}
