package results

import (
	"cmp"
	"fmt"
	"image/color"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The speed–quality frontier: finished runs decoded with each sampler at
// several settings of its knob (steps T, confidence threshold τ, cache),
// at a batch size and length, measured in one process. Each point is
// stored as evaluations of task TaskFrontier, so a report can be drawn
// again without measuring.

// TaskFrontier holds the frontier's measurements.
const TaskFrontier = "frontier"

// Frontier metrics beyond the generation ones.
const MetricLatency = "latency_s" // seconds until a batch of sequences is complete

// FrontierPoint is one measured decoding setting of one run.
type FrontierPoint struct {
	RunID      int64
	Variant    string
	Sampler    string // e.g. ar, ancestral-cached, confidence, block-cached
	Knob       string // what varies within the sampler: "T=64", "τ=0.9 T=256"
	Steps      int
	Batch, Len int
	GenPPL     float64 // under the AR reference, MDLM's protocol
	Entropy    float64 // mean unigram entropy of the samples (nats)
	TokensPerS float64 // generated tokens per wall second
	Latency    float64 // seconds per batch (per sequence at batch 1)
	ModelCalls int     // per batch
}

// IsAR says whether the point is autoregressive decoding with its KV cache:
// the reference every diffusion point is compared with.
func (p FrontierPoint) IsAR() bool { return p.Sampler == "ar" }

func (p FrontierPoint) params() map[string]any {
	return map[string]any{"sampler": p.Sampler, "knob": p.Knob, ParamSteps: p.Steps, "batch": p.Batch, "length": p.Len}
}

// Evaluations are the point's rows.
func (p FrontierPoint) Evaluations() []Evaluation {
	row := func(metric string, v float64) Evaluation {
		return Evaluation{RunID: p.RunID, Task: TaskFrontier, Metric: metric, Value: v, Stderr: math.NaN(), N: int64(p.Batch), Params: p.params()}
	}
	return []Evaluation{
		row(MetricGenPPL, p.GenPPL), row(MetricEntropy, p.Entropy), row(MetricTokensPerS, p.TokensPerS),
		row(MetricLatency, p.Latency), row(MetricModelCalls, float64(p.ModelCalls)),
	}
}

// FrontierPoints reads the frontier measurements of runs back.
func FrontierPoints(s *Store, runs []Run) ([]FrontierPoint, error) {
	ids := make([]int64, len(runs))
	variant := map[int64]string{}
	for i, r := range runs {
		ids[i], variant[r.ID] = r.ID, r.Variant
	}
	evs, err := s.Evaluations(ids)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*FrontierPoint{}
	var keys []string
	num := func(v any) int {
		f, _ := v.(float64)
		return int(f)
	}
	for _, e := range evs {
		if e.Task != TaskFrontier {
			continue
		}
		p := FrontierPoint{RunID: e.RunID, Variant: variant[e.RunID], Sampler: fmt.Sprint(e.Params["sampler"]), Knob: fmt.Sprint(e.Params["knob"]),
			Steps: num(e.Params[ParamSteps]), Batch: num(e.Params["batch"]), Len: num(e.Params["length"])}
		key := fmt.Sprintf("%d %s %s %d %d", p.RunID, p.Sampler, p.Knob, p.Batch, p.Len)
		q, ok := byKey[key]
		if !ok {
			q = &p
			byKey[key] = q
			keys = append(keys, key)
		}
		switch e.Metric {
		case MetricGenPPL:
			q.GenPPL = e.Value
		case MetricEntropy:
			q.Entropy = e.Value
		case MetricTokensPerS:
			q.TokensPerS = e.Value
		case MetricLatency:
			q.Latency = e.Value
		case MetricModelCalls:
			q.ModelCalls = int(e.Value)
		}
	}
	out := make([]FrontierPoint, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out, nil
}

// frontierGroups splits points by (batch, length), in order.
func frontierGroups(points []FrontierPoint) [][]FrontierPoint {
	groups := map[[2]int][]FrontierPoint{}
	for _, p := range points {
		k := [2]int{p.Batch, p.Len}
		groups[k] = append(groups[k], p)
	}
	keys := slices.SortedFunc(maps.Keys(groups), func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	out := make([][]FrontierPoint, len(keys))
	for i, k := range keys {
		out[i] = groups[k]
	}
	return out
}

// arOf is the group's AR+KV point, if measured.
func arOf(group []FrontierPoint) (FrontierPoint, bool) {
	for _, p := range group {
		if p.IsAR() {
			return p, true
		}
	}
	return FrontierPoint{}, false
}

// WriteFrontierTable prints, per batch size and length, every point with
// its speed relative to AR+KV and its generative perplexity beside AR's,
// and then which diffusion settings are faster than AR+KV and what they
// give up.
func WriteFrontierTable(w io.Writer, points []FrontierPoint) {
	for _, g := range frontierGroups(points) {
		ar, hasAR := arOf(g)
		slices.SortFunc(g, func(a, b FrontierPoint) int { return cmp.Compare(b.TokensPerS, a.TokensPerS) })
		fmt.Fprintf(w, "\nbatch %d, L = %d\n", g[0].Batch, g[0].Len)
		fmt.Fprintf(w, "%-18s %-16s %-14s %6s %9s %7s %10s %8s %8s\n", "variant", "sampler", "knob", "NFE", "tok/s", "×AR", "latency-s", "gen PPL", "entropy")
		var faster []string
		for _, p := range g {
			ratio := math.NaN()
			if hasAR && ar.TokensPerS > 0 {
				ratio = p.TokensPerS / ar.TokensPerS
			}
			fmt.Fprintf(w, "%-18s %-16s %-14s %6d %9.1f %7.2f %10.3f %8.1f %8.3f\n", p.Variant, p.Sampler, p.Knob, p.ModelCalls, p.TokensPerS, ratio, p.Latency, p.GenPPL, p.Entropy)
			if hasAR && !p.IsAR() && ratio > 1 {
				faster = append(faster, fmt.Sprintf("%s %s %s (%.2f× AR's tokens/s, gen PPL %.1f vs %.1f, entropy %.3f vs %.3f)",
					p.Variant, p.Sampler, p.Knob, ratio, p.GenPPL, ar.GenPPL, p.Entropy, ar.Entropy))
			}
		}
		switch {
		case !hasAR:
			fmt.Fprintln(w, "no AR+KV point to compare with")
		case len(faster) == 0:
			fmt.Fprintf(w, "no diffusion setting is faster than AR+KV (%.1f tok/s) here\n", ar.TokensPerS)
		default:
			fmt.Fprintf(w, "faster than AR+KV (%.1f tok/s): %s\n", ar.TokensPerS, strings.Join(faster, "; "))
		}
	}
}

// WriteFrontierPlots draws gen PPL against tokens/s (log–log), one figure
// per batch size and length, one line per (variant, sampler) through its
// knob's settings, AR+KV as a large star, into dir as PNG and SVG.
func WriteFrontierPlots(dir string, points []FrontierPoint, opts PlotOptions) ([]string, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, g := range frontierGroups(points) {
		name := fmt.Sprintf("frontier_b%d_L%d", g[0].Batch, g[0].Len)
		p := plot.New()
		p.Title.Text = fmt.Sprintf("Speed against quality: batch %d, L = %d", g[0].Batch, g[0].Len)
		p.X.Label.Text = "generated tokens / s"
		p.Y.Label.Text = "generative perplexity (AR reference)"
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
		leg := newLegend()
		series := map[string]plotter.XYs{}
		for _, q := range g {
			if q.TokensPerS > 0 && q.GenPPL > 0 && !math.IsInf(q.GenPPL, 0) {
				k := q.Variant + " " + q.Sampler
				series[k] = append(series[k], plotter.XY{X: q.TokensPerS, Y: q.GenPPL})
			}
		}
		if len(series) == 0 {
			opts.Logger.Info("plot skipped", "plot", name, "reason", "no finite gen PPL and tokens/s")
			continue
		}
		for i, k := range slices.Sorted(maps.Keys(series)) {
			xys := series[k]
			slices.SortFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
			c := seriesColor(i)
			if strings.HasSuffix(k, " ar") {
				sc, err := plotter.NewScatter(xys)
				if err != nil {
					return files, err
				}
				sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(7), Shape: draw.PyramidGlyph{}}
				p.Add(sc)
				leg.Add(k+" (KV cache)", sc)
				continue
			}
			l, sc, err := plotter.NewLinePoints(xys)
			if err != nil {
				return files, err
			}
			l.Color, l.Width = c, 1.2
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: 3, Shape: draw.CircleGlyph{}}
			p.Add(l, sc)
			leg.Add(k, l, sc)
		}
		fig := figure{name: name, plot: p, legend: leg}
		for _, ext := range []string{".png", ".svg"} {
			path := filepath.Join(dir, name+ext)
			if err := saveFigure(fig, opts.Width, opts.Height, path); err != nil {
				return files, fmt.Errorf("save %s: %w", path, err)
			}
			files = append(files, path)
		}
	}
	return files, nil
}

// seriesColor is the i-th of ten distinguishable colours (matplotlib's
// tab10), for figures whose series are not variants.
func seriesColor(i int) color.Color {
	tab10 := [...]uint32{0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf}
	c := tab10[i%len(tab10)]
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 0xff}
}
