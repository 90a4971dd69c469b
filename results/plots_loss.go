package results

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// lossFigures draws one loss-against-step figure per sweep among runs: each
// run one colour, training solid, validation dashed with markers (it is
// logged far less often).
func lossFigures(s *Store, runs []Run, metric string, styles map[string]variantStyle) ([]figure, error) {
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
		fig, err := lossFigure(s, bySweep[sw], metric, styles)
		if err != nil {
			return nil, err
		}
		fig.name = name
		figs = append(figs, fig)
		bpc, err := bpcFigure(s, bySweep[sw], styles)
		if err != nil {
			return nil, err
		}
		if bpc.plot != nil {
			bpc.name = "bpc_vs_step"
			if sw != "" {
				bpc.name += "_" + slug(sw)
			}
			figs = append(figs, bpc)
		}
	}
	return figs, nil
}

// bpcFigure draws the validation bound in bits per character against the
// training step (the trainer's periodic evaluation on a few batches), one
// line per run, coloured by process, dashed and marked by objective, with
// the unigram model's level on the validation split. Nothing when no run
// logged "bpc" (BPE runs before this metric existed).
func bpcFigure(s *Store, runs []Run, styles map[string]variantStyle) (figure, error) {
	p := plot.New()
	p.Title.Text = "Validation bits per character during training"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "bits per character (bound, few batches)"
	leg := newLegend()
	seen := map[string]bool{}
	maxStep := 0.0
	for _, r := range runs {
		pts, err := s.Metrics(r.ID, MetricBPC)
		if err != nil {
			return figure{}, err
		}
		xys := finiteXYs(pts, SplitValid)
		if len(xys) == 0 {
			continue
		}
		maxStep = max(maxStep, xys[len(xys)-1].X)
		st := style(styles, r.Label())
		l, sc, err := plotter.NewLinePoints(xys)
		if err != nil {
			return figure{}, fmt.Errorf("bpc line of %s: %w", r.Name, err)
		}
		l.Color, l.Width, l.Dashes = st.color, 1.2, st.dashes
		sc.GlyphStyle = draw.GlyphStyle{Color: st.color, Radius: 2.5, Shape: st.shape}
		p.Add(l, sc)
		if !seen[r.Label()] {
			leg.Add(r.Label(), l, sc)
			seen[r.Label()] = true
		}
	}
	if len(seen) == 0 {
		return figure{skip: "no run logged " + MetricBPC}, nil
	}
	if level, ok, err := unigramEval(s, runs, SplitValid, MetricUnigramBPC); err != nil {
		return figure{}, err
	} else if ok {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: level}, {X: maxStep, Y: level}})
		if err != nil {
			return figure{}, err
		}
		l.Color, l.Width, l.Dashes = referenceColor(), 1.2, []vg.Length{vg.Points(5), vg.Points(3)}
		p.Add(l)
		leg.Add(fmt.Sprintf("unigram (no context): %.3g", level), l)
	}
	p.Add(plotter.NewGrid())
	return figure{plot: p, legend: leg}, nil
}

// unigramEval is the mean recorded value of metric on task among runs.
func unigramEval(s *Store, runs []Run, task, metric string) (float64, bool, error) {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	evs, err := s.Evaluations(ids)
	if err != nil {
		return 0, false, err
	}
	sum, n := 0.0, 0
	for _, e := range evs {
		if e.Task == task && e.Metric == metric && !math.IsNaN(e.Value) {
			sum += e.Value
			n++
		}
	}
	return sum / float64(max(n, 1)), n > 0, nil
}

// lossFigure colours runs by variant (the seeds of a variant share a
// colour and one legend entry), so that a sweep of many runs stays legible.
// Training lines are thin: objectives' training losses are on different
// scales, while every run's validation loss is its bound in nats per token.
func lossFigure(s *Store, runs []Run, metric string, styles map[string]variantStyle) (figure, error) {
	p := plot.New()
	p.X.Label.Text = "step"
	p.Y.Label.Text = metric + " (thin: train; dashed with marks: validation)"
	leg := newLegend()
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
			st := style(styles, r.Label())
			l.Color = st.color
			if _, known := styles[r.Label()]; !known {
				l.Color = plotutil.Color(ci)
			}
			l.Width = 0.6
			p.Add(l)
			if split == SplitValid {
				l.Width = 1.4
				l.Dashes = plotutil.Dashes(1)
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return figure{}, fmt.Errorf("loss points of %s: %w", r.Name, err)
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: l.Color, Radius: 2.5, Shape: st.shape}
				p.Add(sc)
				if !seen {
					leg.Add(r.Label(), l, sc)
					seen = true
				}
			}
			lines++
		}
		if !seen { // a run without validation points still gets its entry
			if l, err := plotter.NewLine(finiteXYs(pts, SplitTrain)); err == nil && len(l.XYs) > 0 {
				l.Color = style(styles, r.Label()).color
				leg.Add(r.Label(), l)
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
	return figure{plot: p, legend: leg}, nil
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
