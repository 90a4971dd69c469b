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

func lossFigure(s *Store, runs []Run, metric string) (figure, error) {
	p := plot.New()
	p.X.Label.Text = "step"
	p.Y.Label.Text = metric
	p.Legend.Top = true
	lines := 0
	for i, r := range runs {
		pts, err := s.Metrics(r.ID, metric)
		if err != nil {
			return figure{}, err
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
			l.Color = plotutil.Color(i)
			l.Width = 1.2
			thumbs := []plot.Thumbnailer{l}
			p.Add(l)
			if split == SplitValid {
				l.Dashes = plotutil.Dashes(1)
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return figure{}, fmt.Errorf("loss points of %s: %w", r.Name, err)
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: l.Color, Radius: 2, Shape: draw.CircleGlyph{}}
				p.Add(sc)
				thumbs = append(thumbs, sc)
			}
			p.Legend.Add(r.Name+" "+split, thumbs...)
			lines++
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
