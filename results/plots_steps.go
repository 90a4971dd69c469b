package results

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// stepsFigure draws metric against sampling steps (the "steps" param) on a
// log2 axis, one line per variant and remaining params (the sampler). When
// the metric was recorded as an evaluation, those columns are used; the
// averages derived from the samples table are the fallback, so that a
// quantity is not drawn twice. A series with one point while others have
// several is a sampler that ignores T (autoregressive decoding): it is drawn
// as a dashed level across the axis. Values spanning more than a factor 20
// get a log y axis.
//
// Colour and glyph follow the variant's process and objective (stylesOf);
// the legend sits outside the data.
func stepsFigure(t *Table, styles map[string]variantStyle, name, metric, title, ylabel string) (figure, error) {
	cols := stepColumns(t, metric, false)
	if len(cols) == 0 {
		cols = stepColumns(t, metric, true)
	}
	if len(cols) == 0 {
		return figure{name: name, skip: fmt.Sprintf("no %s with a %q param", metric, ParamSteps)}, nil
	}
	type point struct{ steps, value, err float64 }
	series := map[string][]point{}
	variantOf := map[string]string{}
	for _, r := range t.Rows {
		for _, ci := range cols {
			c, col := r.Cells[ci], t.Columns[ci]
			if !c.OK || math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
				continue
			}
			label := r.Variant
			for _, k := range slices.Sorted(maps.Keys(col.Params)) {
				if v := fmt.Sprint(col.Params[k]); k != ParamSteps && v != r.Variant {
					label += " " + v
				}
			}
			series[label] = append(series[label], point{col.Params[ParamSteps].(float64), c.Value, c.Err})
			variantOf[label] = r.Variant
		}
	}
	if len(series) == 0 {
		return figure{name: name, skip: "no finite value of " + metric}, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "sampling steps"
	p.Y.Label.Text = ylabel
	leg := newLegend()
	lo, hi := math.Inf(1), math.Inf(-1)
	ylo, yhi := math.Inf(1), math.Inf(-1)
	longest := 0
	for _, pts := range series {
		longest = max(longest, len(pts))
		for _, q := range pts {
			lo, hi = min(lo, q.steps), max(hi, q.steps)
			ylo, yhi = min(ylo, q.value), max(yhi, q.value)
		}
	}
	logY := ylo > 0 && yhi/ylo > 20
	for _, label := range slices.Sorted(maps.Keys(series)) {
		st := style(styles, variantOf[label])
		pts := series[label]
		slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.steps, b.steps) })
		var xys plotter.XYs
		var eb errPoints
		for _, q := range pts {
			xys = append(xys, plotter.XY{X: q.steps, Y: q.value})
			if q.err > 0 && !math.IsInf(q.err, 0) {
				low := q.err
				if logY && low >= q.value { // a log axis has no room below zero
					low = q.value * 0.99
				}
				eb.XYs = append(eb.XYs, plotter.XY{X: q.steps, Y: q.value})
				eb.YErrors = append(eb.YErrors, struct{ Low, High float64 }{Low: low, High: q.err})
			}
		}
		level := len(pts) == 1 && longest > 1
		if level {
			label += " (any T)"
			xys = plotter.XYs{{X: lo, Y: pts[0].value}, {X: hi, Y: pts[0].value}}
		}
		l, sc, err := plotter.NewLinePoints(xys)
		if err != nil {
			return figure{}, fmt.Errorf("%s line %s: %w", name, label, err)
		}
		l.Color, l.Width, l.Dashes = st.color, 1.2, st.dashes
		if level {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: l.Color, Radius: 3, Shape: st.shape}
		p.Add(l, sc)
		if len(eb.XYs) > 0 {
			bars, err := plotter.NewYErrorBars(eb)
			if err != nil {
				return figure{}, fmt.Errorf("%s error bars %s: %w", name, label, err)
			}
			bars.Color = l.Color
			p.Add(bars)
		}
		leg.Add(label, l, sc)
	}
	// Log scale with ticks at powers of two; the explicit range (half an
	// octave of margin) keeps a single-step series off a zero-width axis.
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = pow2Ticks{}
	p.X.Min, p.X.Max = lo/math.Sqrt2, hi*math.Sqrt2
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	return figure{name: name, plot: p, legend: leg}, nil
}

// stepColumns lists the columns of metric with a positive numeric steps
// param, from the samples-derived task or from the others.
func stepColumns(t *Table, metric string, derived bool) []int {
	var out []int
	for i, c := range t.Columns {
		s, ok := c.Params[ParamSteps].(float64)
		if c.Metric == metric && ok && s > 0 && (c.Task == TaskSamples) == derived {
			out = append(out, i)
		}
	}
	return out
}

// pow2Ticks marks a log axis at powers of two (8, 16, ..., 1024), the values
// sampling steps take.
type pow2Ticks struct{}

// Ticks implements plot.Ticker.
func (pow2Ticks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log2(lo)); e <= math.Ceil(math.Log2(hi)); e++ {
		if v := math.Exp2(e); v >= lo && v <= hi {
			ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprint(v)})
		}
	}
	return ticks
}
