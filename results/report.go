package results

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Column is one quantity of the comparison table: a (task, metric, params)
// combination found in the store.
type Column struct {
	Task   string
	Metric string
	Params map[string]any
	key    string // canonical identity: task, metric and params JSON
}

// Label is the column header, e.g. "valid/ppl_bound" or
// "gen/gen_ppl sampler=ancestral steps=64".
func (c Column) Label() string {
	l := c.Task + "/" + c.Metric
	for _, k := range slices.Sorted(maps.Keys(c.Params)) {
		l += fmt.Sprintf(" %s=%v", k, c.Params[k])
	}
	return l
}

// ColumnFilter selects columns: empty Task or Metric match any, and every
// entry of Params must be present with an equal value.
type ColumnFilter struct {
	Task   string
	Metric string
	Params map[string]any
}

func (f ColumnFilter) match(c Column) bool {
	if (f.Task != "" && f.Task != c.Task) || (f.Metric != "" && f.Metric != c.Metric) {
		return false
	}
	for k, want := range f.Params {
		got, ok := c.Params[k]
		if !ok || !jsonEqual(got, want) {
			return false
		}
	}
	return true
}

// ReportOptions tune Report. The zero value shows every quantity in the store.
type ReportOptions struct {
	// Columns, when set, selects and orders columns: the columns matched by
	// the first filter come first (in default order among themselves), and so
	// on; a column matched by no filter is left out.
	Columns []ColumnFilter
	// MergeParams names params left out of column identity, so that
	// variants measured with different values (each its own sampler, say)
	// share one column instead of each filling its own.
	MergeParams []string
}

// Report builds the comparison table of the runs matching f: one row per
// variant (Run.Label), one column per quantity found among their evaluations
// and sample statistics. Seeds of a variant are aggregated (see Cell).
//
// Report includes runs of every status unless f restricts it; a sweep report
// usually passes Status: []Status{StatusFinished}.
func Report(s *Store, f RunFilter, opts ReportOptions) (*Table, error) {
	runs, err := s.Runs(f)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	obs, err := s.observations(runs)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	for i := range obs {
		obs[i].col = obs[i].col.without(opts.MergeParams)
	}
	return buildTable(runs, obs, opts.Columns), nil
}

// observation is one number of one run, from an evaluation or derived from
// its samples.
type observation struct {
	runID  int64
	col    Column
	value  float64
	stderr float64
}

// observations gathers the evaluations and sample statistics of runs.
func (s *Store) observations(runs []Run) ([]observation, error) {
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	evals, err := s.Evaluations(ids)
	if err != nil {
		return nil, err
	}
	stats, err := s.SampleStats(ids)
	if err != nil {
		return nil, err
	}
	out := make([]observation, 0, len(evals)+len(stats))
	for _, e := range evals {
		out = append(out, observation{e.RunID, newColumn(e.Task, e.Metric, e.Params), e.Value, e.Stderr})
	}
	for _, st := range stats {
		// float64 steps, as JSON-decoded evaluation params carry them.
		p := map[string]any{ParamSampler: st.Sampler, ParamSteps: float64(st.Steps)}
		out = append(out, observation{st.RunID, newColumn(TaskSamples, st.Metric, p), st.Mean, st.Stderr})
	}
	return out, nil
}

func newColumn(task, metric string, params map[string]any) Column {
	if params == nil {
		params = map[string]any{}
	}
	p, _ := json.Marshal(params) // values came from JSON or from us: encodable
	return Column{Task: task, Metric: metric, Params: params, key: task + "\x00" + metric + "\x00" + string(p)}
}

// without is c with the named params removed.
func (c Column) without(names []string) Column {
	if len(names) == 0 {
		return c
	}
	p := map[string]any{}
	for k, v := range c.Params {
		if !slices.Contains(names, k) {
			p[k] = v
		}
	}
	return newColumn(c.Task, c.Metric, p)
}

// buildTable groups observations by variant and column and aggregates them.
func buildTable(runs []Run, obs []observation, filters []ColumnFilter) *Table {
	label := make(map[int64]string, len(runs))
	runsOf := map[string]int{}
	for _, r := range runs {
		label[r.ID] = r.Label()
		runsOf[r.Label()]++
	}
	cols := map[string]Column{}
	type cellKey struct{ variant, col string }
	vals := map[cellKey][]observation{}
	for _, o := range obs {
		cols[o.col.key] = o.col
		k := cellKey{label[o.runID], o.col.key}
		vals[k] = append(vals[k], o)
	}
	t := &Table{Columns: orderColumns(slices.Collect(maps.Values(cols)), filters)}
	for _, v := range slices.Sorted(maps.Keys(runsOf)) {
		row := Row{Variant: v, Runs: runsOf[v], Cells: make([]Cell, len(t.Columns))}
		for i, c := range t.Columns {
			row.Cells[i] = aggregate(vals[cellKey{v, c.key}])
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// orderColumns sorts columns (known tasks first, then task, metric and params)
// and applies the filters' selection and order.
func orderColumns(cols []Column, filters []ColumnFilter) []Column {
	sort.Slice(cols, func(i, j int) bool { return compareColumns(cols[i], cols[j]) < 0 })
	if len(filters) == 0 {
		return cols
	}
	var out []Column
	taken := map[string]bool{}
	for _, f := range filters {
		for _, c := range cols {
			if !taken[c.key] && f.match(c) {
				taken[c.key] = true
				out = append(out, c)
			}
		}
	}
	return out
}

func compareColumns(a, b Column) int {
	if c := cmp.Compare(taskOrder(a.Task), taskOrder(b.Task)); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Task, b.Task); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Metric, b.Metric); c != 0 {
		return c
	}
	return compareParams(a.Params, b.Params)
}

// compareParams orders params key by key, numbers numerically (steps 8 before
// 64 before 1024), a missing key first.
func compareParams(a, b map[string]any) int {
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if oka != okb {
			if !oka {
				return -1
			}
			return 1
		}
		fa, na := va.(float64)
		fb, nb := vb.(float64)
		var c int
		if na && nb {
			c = cmp.Compare(fa, fb)
		} else {
			c = cmp.Compare(fmt.Sprint(va), fmt.Sprint(vb))
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// jsonEqual compares two param values as JSON, so that int 64 equals the
// float64 64 decoded from the store.
func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
