package results

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// syntheticStore holds two variants: "ar" with one run, "mdlm" with two seeds,
// one of which lacks the LAMBADA evaluation.
func syntheticStore(t *testing.T) *Store {
	t.Helper()
	s := newStore(t)
	start := func(name, variant string, seed int64) int64 {
		id, _, err := s.StartRun(RunInfo{Name: name, Sweep: "owt", Variant: variant, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ar, m1, m2 := start("ar-s1", "ar", 1), start("mdlm-s1", "mdlm", 1), start("mdlm-s2", "mdlm", 2)
	gen := map[string]any{ParamSteps: 64, ParamSampler: "ancestral"}
	evals := []Evaluation{
		{RunID: ar, Task: TaskValid, Metric: MetricPPLBound, Value: 20, Stderr: 0.12, N: 1000},
		{RunID: ar, Task: TaskLAMBADA, Metric: MetricAccuracy, Value: 0.45, Stderr: 0.007, N: 5153},
		{RunID: m1, Task: TaskValid, Metric: MetricPPLBound, Value: 23.0, Stderr: 0.1, N: 1000},
		{RunID: m2, Task: TaskValid, Metric: MetricPPLBound, Value: 23.4, Stderr: 0.1, N: 1000},
		{RunID: m1, Task: TaskLAMBADA, Metric: MetricAccuracy, Value: 0.40, Stderr: 0.0071, N: 5153},
		{RunID: m1, Task: TaskGen, Metric: MetricGenPPL, Value: 40, Stderr: 1, N: 16, Params: gen},
		{RunID: m2, Task: TaskGen, Metric: MetricGenPPL, Value: 44, Stderr: 1, N: 16, Params: gen},
	}
	if err := s.AddEvaluations(evals); err != nil {
		t.Fatal(err)
	}
	samples := []Sample{
		{RunID: m1, Sampler: "ancestral", Steps: 64, Idx: 0, Text: "x", ModelCalls: 64, TokensPerS: 100},
		{RunID: m1, Sampler: "ancestral", Steps: 64, Idx: 1, Text: "y", ModelCalls: 64, TokensPerS: 120},
		{RunID: ar, Sampler: "ancestral", Steps: 64, Idx: 0, Text: "z", ModelCalls: 64, TokensPerS: 200},
	}
	if err := s.AddSamples(samples); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReportMarkdown(t *testing.T) {
	s := syntheticStore(t)
	tab, err := Report(s, RunFilter{Sweep: "owt"}, ReportOptions{Columns: []ColumnFilter{
		{Task: TaskValid, Metric: MetricPPLBound},
		{Task: TaskLAMBADA},
		{Metric: MetricGenPPL},
		{Metric: MetricTokensPerS, Params: map[string]any{ParamSteps: 64}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// mdlm valid: mean of 23.0 and 23.4, sample std sqrt(0.08) = 0.283.
	// mdlm gen_ppl: mean of 40 and 44, std sqrt(8) = 2.83.
	// mdlm tokens/s: one run, two samples 100 and 120: stderr 14.14/sqrt(2) = 10.
	// ar tokens/s: one sample, no stderr.
	want := `| variant | runs | valid/ppl_bound |      lambada/accuracy | gen/gen_ppl sampler=ancestral steps=64 | samples/tokens_per_s sampler=ancestral steps=64 |
|:--------|-----:|----------------:|----------------------:|---------------------------------------:|------------------------------------------------:|
| ar      |    1 |    20.00 ± 0.12 |       0.4500 ± 0.0070 |                                      — |                                          200.00 |
| mdlm    |    2 |    23.20 ± 0.28 | 0.4000 ± 0.0071 (n=1) |                             42.0 ± 2.8 |                                  110 ± 10 (n=1) |

` + Footnote + "\n"
	var b strings.Builder
	if err := tab.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Fatalf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}
	c := tab.Rows[1].Cells[0]
	if math.Abs(c.Value-23.2) > 1e-12 || math.Abs(c.Err-math.Sqrt(0.08)) > 1e-12 || c.N != 2 {
		t.Fatalf("mdlm valid cell %+v", c)
	}
	c = tab.Rows[1].Cells[3]
	if math.Abs(c.Value-110) > 1e-9 || math.Abs(c.Err-10) > 1e-9 || c.N != 1 {
		t.Fatalf("mdlm tokens/s cell %+v", c)
	}
}

func TestReportText(t *testing.T) {
	s := syntheticStore(t)
	tab, err := Report(s, RunFilter{}, ReportOptions{Columns: []ColumnFilter{{Task: TaskValid}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `variant  runs  valid/ppl_bound
-------  ----  ---------------
ar          1     20.00 ± 0.12
mdlm        2     23.20 ± 0.28

` + Footnote + "\n"
	if got := tab.String(); got != want {
		t.Fatalf("text:\n%s\nwant:\n%s", got, want)
	}
}

// Without options every quantity in the store becomes a column, known tasks
// first; and a filter that matches no run gives an empty table.
func TestReportColumnsFromDB(t *testing.T) {
	s := syntheticStore(t)
	tab, err := Report(s, RunFilter{}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range tab.Columns {
		got = append(got, c.Label())
	}
	want := []string{"valid/ppl_bound", "lambada/accuracy", "gen/gen_ppl sampler=ancestral steps=64",
		"samples/model_calls sampler=ancestral steps=64", "samples/tokens_per_s sampler=ancestral steps=64"}
	if !slices.Equal(got, want) {
		t.Fatalf("columns %q, want %q", got, want)
	}
	empty, err := Report(s, RunFilter{Sweep: "none"}, ReportOptions{})
	if err != nil || len(empty.Rows) != 0 || len(empty.Columns) != 0 {
		t.Fatalf("empty report %+v, %v", empty, err)
	}
}

func TestCellString(t *testing.T) {
	tests := []struct {
		cell Cell
		want string
	}{
		{Cell{Value: 23.2134, Err: 0.1523, OK: true}, "23.21 ± 0.15"},
		{Cell{Value: 0.45123, Err: 0.00712, OK: true}, "0.4512 ± 0.0071"},
		{Cell{Value: 12345.6, Err: 30.1, OK: true}, "12346 ± 30"},
		{Cell{Value: 23.21, Err: 1.5, OK: true}, "23.2 ± 1.5"},
		{Cell{Value: 23.21, Err: math.NaN(), OK: true}, "23.21"},
		{Cell{Value: 23.21, Err: 0, OK: true}, "23.21"},
		{Cell{Value: 0.123456, Err: math.NaN(), OK: true}, "0.123"},
		{Cell{Value: math.NaN(), OK: true}, "NaN"},
		{Cell{}, "—"},
	}
	for _, tc := range tests {
		if got := tc.cell.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cell, got, tc.want)
		}
	}
}

func TestReportMergeParams(t *testing.T) {
	s := newStore(t)
	var ids []int64
	for _, v := range []string{"mdlm", "sedd"} {
		id, _, err := s.StartRun(RunInfo{Name: v, Variant: v})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	err := s.AddEvaluations([]Evaluation{
		{RunID: ids[0], Task: TaskGen, Metric: MetricGenPPL, Value: 40, N: 8, Params: map[string]any{ParamSteps: 64, ParamSampler: "ancestral-cached"}},
		{RunID: ids[1], Task: TaskGen, Metric: MetricGenPPL, Value: 50, N: 8, Params: map[string]any{ParamSteps: 64, ParamSampler: "sedd-analytic"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	split, err := Report(s, RunFilter{}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := Report(s, RunFilter{}, ReportOptions{MergeParams: []string{ParamSampler}})
	if err != nil {
		t.Fatal(err)
	}
	if len(split.Columns) != 2 || len(merged.Columns) != 1 {
		t.Fatalf("columns: %d without merging (want 2), %d merged (want 1)", len(split.Columns), len(merged.Columns))
	}
	if got := merged.Columns[0].Label(); got != "gen/gen_ppl steps=64" {
		t.Errorf("merged column %q", got)
	}
	for i, want := range []float64{40, 50} {
		if c := merged.Rows[i].Cells[0]; !c.OK || c.Value != want {
			t.Errorf("row %s: cell %+v, want %v", merged.Rows[i].Variant, c, want)
		}
	}
}
