package results

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg/draw"
)

// lossFigures draws one loss-against-step figure per sweep among runs: each
// run one colour, training solid, validation dashed with markers (it is
// logged far less often).
func lossFigures(s *Store, runs []Run, metric string) ([]figure, error) {
	var sweeps []string
	bySweep := map[string][]Run{}
	for _, r := range runs {
		if _, ok := bySweep[r.Sweep]; !ok {
			sweeps = append(sweeps, r.Sweep)
		}
		bySweep[r.Sweep] = append(bySweep[r.Sweep], r)
	}
	var figs []figure
	for _, sw := range sweeps {
		name := "loss"
		if sw != "" {
			name += "_" + slug(sw)
		}
		fig, err := lossFigure(s, bySweep[sw], metric)
		if err != nil {
			return nil, err
		}
		fig.name = name
		figs = append(figs, fig)
	}
	return figs, nil
}

// lossFigure colours runs by variant (the seeds of a variant share a
// colour and one legend entry), so that a sweep of many runs stays legible.
// Training lines are thin: objectives' training losses are on different
// scales, while every run's validation loss is its bound in nats per token.
func lossFigure(s *Store, runs []Run, metric string) (figure, error) {
	p := plot.New()
	p.X.Label.Text = "step"
	p.Y.Label.Text = metric + " (thin: train; dashed with dots: validation)"
	p.Legend.Top = true
	colour := map[string]int{}
	lines := 0
	for _, r := range runs {
		pts, err := s.Metrics(r.ID, metric)
		if err != nil {
			return figure{}, err
		}
		ci, seen := colour[r.Label()]
		if !seen {
			ci = len(colour)
			colour[r.Label()] = ci
		}
		for _, split := range []string{SplitTrain, SplitValid} {
			xys := finiteXYs(pts, split)
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return figure{}, fmt.Errorf("loss line of %s: %w", r.Name, err)
			}
			l.Color = plotutil.Color(ci)
			l.Width = 0.6
			p.Add(l)
			if split == SplitValid {
				l.Width = 1.4
				l.Dashes = plotutil.Dashes(1)
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return figure{}, fmt.Errorf("loss points of %s: %w", r.Name, err)
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: l.Color, Radius: 2, Shape: draw.CircleGlyph{}}
				p.Add(sc)
				if !seen {
					p.Legend.Add(r.Label(), l, sc)
					seen = true
				}
			}
			lines++
		}
		if !seen { // a run without validation points still gets its entry
			if l, err := plotter.NewLine(finiteXYs(pts, SplitTrain)); err == nil && len(l.XYs) > 0 {
				l.Color = plotutil.Color(ci)
				p.Legend.Add(r.Label(), l)
			}
		}
	}
	if lines == 0 {
		return figure{skip: fmt.Sprintf("no finite %q metric in %d runs", metric, len(runs))}, nil
	}
	sweep := runs[0].Sweep
	p.Title.Text = "Loss"
	if sweep != "" {
		p.Title.Text += " — " + sweep
	}
	return figure{plot: p}, nil
}

// finiteXYs keeps the points of one split, dropping NaN and Inf (a diverged
// step), which gonum refuses to draw.
func finiteXYs(pts []MetricPoint, split string) plotter.XYs {
	var xys plotter.XYs
	for _, pt := range pts {
		if pt.Split == split && !math.IsNaN(pt.Value) && !math.IsInf(pt.Value, 0) {
			xys = append(xys, plotter.XY{X: float64(pt.Step), Y: pt.Value})
		}
	}
	return xys
}
