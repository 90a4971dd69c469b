package results

import (
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// Metric splits.
const (
	SplitTrain = "train"
	SplitValid = "valid"
)

// MetricSink is what a training loop needs of the results store: it lets the
// trainer record scalars per step without depending on SQLite (tests can pass
// an in-memory sink).
type MetricSink interface {
	LogMetrics(step int, split string, m map[string]float64) error
}

// RunSink is the MetricSink of one run of a Store.
type RunSink struct {
	store *Store
	runID int64
}

// Sink returns the MetricSink that writes into run runID.
func (s *Store) Sink(runID int64) *RunSink { return &RunSink{store: s, runID: runID} }

// LogMetrics implements MetricSink.
func (r *RunSink) LogMetrics(step int, split string, m map[string]float64) error {
	return r.store.LogMetrics(r.runID, step, split, m)
}

// RunID is the run the sink writes into.
func (r *RunSink) RunID() int64 { return r.runID }

// MetricPoint is one stored metric value.
type MetricPoint struct {
	Step  int
	Split string
	Value float64 // NaN when a NaN was logged
	Time  time.Time
}

// LogMetrics records the scalars of one step in one transaction. A row that
// already exists for (run, step, split, name), as after resuming a killed run
// from an earlier checkpoint, is overwritten rather than duplicated.
func (s *Store) LogMetrics(runID int64, step int, split string, m map[string]float64) error {
	if split != SplitTrain && split != SplitValid {
		return fmt.Errorf("log metrics run %d step %d: split %q is not %q or %q", runID, step, split, SplitTrain, SplitValid)
	}
	if len(m) == 0 {
		return nil
	}
	// Sorted names give a deterministic insert order (and B-tree locality).
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	now := unixSeconds(time.Now())
	return s.withTx(fmt.Sprintf("log metrics run %d step %d", runID, step), func(tx *sql.Tx) error {
		stmt, err := tx.Prepare(`INSERT INTO metrics (run_id, step, split, name, value, time) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, name, split, step) DO UPDATE SET value = excluded.value, time = excluded.time`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, name := range names {
			if _, err := stmt.Exec(runID, step, split, name, sqlFloat(m[name]), now); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
}

// Metrics returns the values of one metric of a run, both splits, ordered by
// split then step.
func (s *Store) Metrics(runID int64, name string) ([]MetricPoint, error) {
	rows, err := s.db.Query(`SELECT step, split, value, time FROM metrics WHERE run_id = ? AND name = ?
		ORDER BY split, step`, runID, name)
	if err != nil {
		return nil, fmt.Errorf("query metric %q of run %d: %w", name, runID, err)
	}
	defer rows.Close()
	var out []MetricPoint
	for rows.Next() {
		var p MetricPoint
		var v sql.NullFloat64
		var t float64
		if err := rows.Scan(&p.Step, &p.Split, &v, &t); err != nil {
			return nil, fmt.Errorf("scan metric %q of run %d: %w", name, runID, err)
		}
		p.Value, p.Time = goFloat(v), fromUnixSeconds(t)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query metric %q of run %d: %w", name, runID, err)
	}
	return out, nil
}

// MetricNames lists the metric names logged for a run, sorted.
func (s *Store) MetricNames(runID int64) ([]string, error) {
	rows, err := s.db.Query(`SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name`, runID)
	if err != nil {
		return nil, fmt.Errorf("query metric names of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("scan metric name of run %d: %w", runID, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
