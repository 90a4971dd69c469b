package results

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/png"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"
)

// checkImage asserts that path is a decodable PNG or an XML document whose
// root element is svg.
func checkImage(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	switch filepath.Ext(path) {
	case ".png":
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
			t.Fatalf("%s: %v image", path, b)
		}
	case ".svg":
		dec := xml.NewDecoder(f)
		for {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("%s: no root element: %v", path, err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if se.Name.Local != "svg" {
					t.Fatalf("%s: root element %q", path, se.Name.Local)
				}
				break
			}
		}
		for { // the whole document must parse
			if _, err := dec.Token(); err != nil {
				if err.Error() != "EOF" {
					t.Fatalf("%s: %v", path, err)
				}
				break
			}
		}
	default:
		t.Fatalf("unexpected file %s", path)
	}
}

func TestWritePlots(t *testing.T) {
	s := syntheticStore(t)
	runs, _ := s.Runs(RunFilter{})
	var evals []Evaluation
	for i, r := range runs {
		for _, steps := range []int{8, 16, 128, 1024} {
			evals = append(evals, Evaluation{RunID: r.ID, Task: TaskGen, Metric: MetricGenPPL,
				Value: 200/math.Log2(float64(steps)) + float64(i), Stderr: 2,
				Params: map[string]any{ParamSteps: steps, ParamSampler: "ancestral"}},
				Evaluation{RunID: r.ID, Task: TaskGen, Metric: MetricEntropy, Value: 4 + float64(i), Stderr: 0.1,
					Params: map[string]any{ParamSteps: steps, ParamSampler: "ancestral"}})
		}
		// An autoregressive sampler ignores T: one point, drawn as a level;
		// its gen ppl 50× below the others' puts the y axis on a log scale
		// with an error bar reaching below zero.
		evals = append(evals, Evaluation{RunID: r.ID, Task: TaskGen, Metric: MetricGenPPL, Value: 1.5, Stderr: 2,
			Params: map[string]any{ParamSteps: 8, ParamSampler: "ar"}})
		for step := 0; step <= 1000; step += 50 {
			loss := 10*math.Exp(-float64(step)/300) + float64(i)
			if step == 500 {
				loss = math.NaN() // a diverged step is dropped, not fatal
			}
			if err := s.LogMetrics(r.ID, step, SplitTrain, map[string]float64{"loss": loss}); err != nil {
				t.Fatal(err)
			}
			if step%250 == 0 {
				if err := s.LogMetrics(r.ID, step, SplitValid, map[string]float64{"loss": loss + 0.2}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := s.AddEvaluations(evals); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "plots")
	files, err := WritePlots(s, RunFilter{Sweep: "owt"}, dir, PlotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		checkImage(t, f)
	}
	slices.Sort(names)
	var want []string
	for _, n := range []string{"loss_owt", "ppl_bound_valid", "gen_ppl_vs_steps", "entropy_vs_steps", "lambada_accuracy", "tokens_per_s_vs_steps"} {
		want = append(want, n+".png", n+".svg")
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Fatalf("%d files in %s, want %d", len(entries), dir, len(want))
	}
}

// Plots without data are skipped with a logged reason and no file.
func TestWritePlotsSkipsEmpty(t *testing.T) {
	s := newStore(t)
	if _, _, err := s.StartRun(RunInfo{Name: "bare", Sweep: "owt"}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	dir := filepath.Join(t.TempDir(), "plots")
	files, err := WritePlots(s, RunFilter{}, dir, PlotOptions{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil || len(files) != 0 {
		t.Fatalf("files %v, err %v", files, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("%d files written for no data", len(entries))
	}
	for _, plot := range []string{"loss_owt", "ppl_bound", "gen_ppl_vs_steps", "entropy_vs_steps", "lambada_accuracy", "tokens_per_s_vs_steps"} {
		if !strings.Contains(log.String(), "plot="+plot+" reason=") {
			t.Errorf("no skip reason logged for %s in:\n%s", plot, log.String())
		}
	}
}

func TestPow2Ticks(t *testing.T) {
	var got []string
	for _, tk := range (pow2Ticks{}).Ticks(8/math.Sqrt2, 1024*math.Sqrt2) {
		got = append(got, tk.Label)
	}
	want := []string{"8", "16", "32", "64", "128", "256", "512", "1024"}
	if !slices.Equal(got, want) {
		t.Fatalf("ticks %v, want %v", got, want)
	}
}

// A perplexity far above the rest puts the bound plot on a log axis,
// with error bars reaching below it cut at the axis; bits per character
// and perplexities close together stay linear.
func TestDotFigureLogAxis(t *testing.T) {
	cell := func(v, e float64) Cell { return Cell{Value: v, Err: e, N: 1, OK: true} }
	table := func(metric string, vals ...Cell) *Table {
		tab := &Table{Columns: []Column{{Task: "test", Metric: metric}}}
		for i, c := range vals {
			tab.Rows = append(tab.Rows, Row{Variant: fmt.Sprintf("v%d", i), Runs: 1, Cells: []Cell{c}})
		}
		return tab
	}
	for _, c := range []struct {
		name string
		tab  *Table
		log  bool
	}{
		{"ppl spread", table(MetricPPLBound, cell(224, 1), cell(21192, 22209), cell(59, 0.02)), true},
		{"ppl close", table(MetricPPLBound, cell(224, 1), cell(237, 2), cell(59, 0.02)), false},
		{"bpc", table(MetricBPC, cell(1.9, 0.01), cell(30, 1)), false},
	} {
		fig, err := dotFigure(c.tab, 0, nil, 234, "x", "x", "y")
		if err != nil {
			t.Fatal(err)
		}
		_, isLog := fig.plot.Y.Scale.(plot.LogScale)
		if isLog != c.log {
			t.Errorf("%s: log axis %v, want %v", c.name, isLog, c.log)
		}
		if isLog && (fig.plot.Y.Min <= 0 || fig.plot.Y.Min > 59 || fig.plot.Y.Max < 21192+22209) {
			t.Errorf("%s: axis [%g, %g] does not hold every point and bar top on a log scale", c.name, fig.plot.Y.Min, fig.plot.Y.Max)
		}
	}
}
