package results

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// pplBoundFigures draws one bar chart per ppl_bound column: tasks differ in
// scale (LAMBADA's bound is several times the validation one), so they do not
// share an axis.
func pplBoundFigures(t *Table) ([]figure, error) {
	var figs []figure
	for i, c := range t.Columns {
		if c.Metric != MetricPPLBound {
			continue
		}
		fig, err := barFigure(t, i, "ppl_bound_"+columnSlug(c), "Perplexity bound — "+columnTitle(c), "perplexity bound")
		if err != nil {
			return nil, err
		}
		figs = append(figs, fig)
	}
	if len(figs) == 0 {
		figs = append(figs, figure{name: "ppl_bound", skip: "no " + MetricPPLBound + " evaluation"})
	}
	return figs, nil
}

// accuracyFigure draws LAMBADA accuracy per variant. With several lambada
// accuracy columns (different params) the first in table order is drawn.
func accuracyFigure(t *Table) (figure, error) {
	for i, c := range t.Columns {
		if c.Task == TaskLAMBADA && c.Metric == MetricAccuracy {
			return barFigure(t, i, "lambada_accuracy", "LAMBADA last-word accuracy", "accuracy")
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

// barFigure draws column col of the table as one bar per variant with an
// error bar of the cell's ±. Variants without a finite value are left out.
func barFigure(t *Table, col int, name, title, ylabel string) (figure, error) {
	var names []string
	var vals plotter.Values
	var pts errPoints
	for _, r := range t.Rows {
		c := r.Cells[col]
		if !c.OK || math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
			continue
		}
		x := float64(len(vals))
		names = append(names, r.Variant)
		vals = append(vals, c.Value)
		if e := c.Err; e > 0 && !math.IsInf(e, 0) {
			pts.XYs = append(pts.XYs, plotter.XY{X: x, Y: c.Value})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{Low: e, High: e})
		}
	}
	if len(vals) == 0 {
		return figure{name: name, skip: fmt.Sprintf("no finite value of %s", t.Columns[col].Label())}, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	bars, err := plotter.NewBarChart(vals, vg.Points(min(40, 300/float64(len(vals)))))
	if err != nil {
		return figure{}, fmt.Errorf("%s bars: %w", name, err)
	}
	bars.Color = plotutil.Color(0)
	bars.LineStyle.Width = 0
	p.Add(bars)
	if len(pts.XYs) > 0 {
		eb, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return figure{}, fmt.Errorf("%s error bars: %w", name, err)
		}
		eb.LineStyle.Width = 1.2
		p.Add(eb)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.75, float64(len(names))-0.25 // keep edge bars off the frame
	if len(names) > 4 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight // the label ends under its bar
	}
	return figure{name: name, plot: p}, nil
}
