package results

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Evaluation is one number measured on a run after (or during) training,
// such as the perplexity bound on a held-out set or the generative perplexity
// of samples drawn with some sampler and number of steps.
type Evaluation struct {
	RunID  int64
	Task   string  // data or procedure, e.g. TaskValid, TaskLAMBADA, TaskGen
	Metric string  // e.g. MetricPPLBound, MetricAccuracy, MetricGenPPL
	Value  float64 // NaN is stored (as NULL) and read back
	Stderr float64 // Monte Carlo or sampling standard error; NaN when unknown
	N      int64   // number of items (tokens, passages, samples) behind Value
	// Params distinguish evaluations of the same task and metric, e.g.
	// {"steps": 64, "sampler": "ancestral"}. Part of the unique key: the same
	// params overwrite, different params add a row.
	Params  map[string]any
	Created time.Time // set by the store
}

// AddEvaluation records one evaluation; see AddEvaluations.
func (s *Store) AddEvaluation(e Evaluation) error { return s.AddEvaluations([]Evaluation{e}) }

// AddEvaluations records evaluations, and the per-sequence bounds behind
// them, in one transaction. An evaluation with the same (run, task, metric,
// params) as a stored one replaces it, and so do sequence bounds of the
// same (run, task), so that a resumed run that evaluates again does not
// duplicate rows.
func (s *Store) AddEvaluations(es []Evaluation, seqs ...SequenceBounds) error {
	if len(es) == 0 && len(seqs) == 0 {
		return nil
	}
	now := formatTime(time.Now())
	return s.withTx(fmt.Sprintf("add %d evaluations", len(es)), func(tx *sql.Tx) error {
		stmt, err := tx.Prepare(`INSERT INTO evaluations (run_id, task, metric, params, value, stderr, n, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, task, metric, params) DO UPDATE SET value = excluded.value,
				stderr = excluded.stderr, n = excluded.n, created_at = excluded.created_at`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range es {
			if e.Task == "" || e.Metric == "" {
				return fmt.Errorf("evaluation of run %d: empty task or metric", e.RunID)
			}
			params, err := marshalJSON(e.Params)
			if err != nil {
				return fmt.Errorf("evaluation %s/%s params: %w", e.Task, e.Metric, err)
			}
			if _, err := stmt.Exec(e.RunID, e.Task, e.Metric, params, sqlFloat(e.Value), sqlFloat(e.Stderr), e.N, now); err != nil {
				return fmt.Errorf("evaluation %s/%s of run %d: %w", e.Task, e.Metric, e.RunID, err)
			}
		}
		return addSequenceBounds(tx, seqs)
	})
}

// Evaluations returns the evaluations of the given runs, ordered by run,
// task, metric and params. No ids, no rows.
func (s *Store) Evaluations(runIDs []int64) ([]Evaluation, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	q := `SELECT run_id, task, metric, params, value, stderr, n, created_at FROM evaluations`
	cond, args := idsIn("run_id", runIDs)
	rows, err := s.db.Query(q+cond+` ORDER BY run_id, task, metric, params`, args...)
	if err != nil {
		return nil, fmt.Errorf("query evaluations: %w", err)
	}
	defer rows.Close()
	var out []Evaluation
	for rows.Next() {
		var e Evaluation
		var params, created string
		var v, se sql.NullFloat64
		if err := rows.Scan(&e.RunID, &e.Task, &e.Metric, &params, &v, &se, &e.N, &created); err != nil {
			return nil, fmt.Errorf("scan evaluation: %w", err)
		}
		e.Value, e.Stderr = goFloat(v), goFloat(se)
		if err := json.Unmarshal([]byte(params), &e.Params); err != nil {
			return nil, fmt.Errorf("evaluation %s/%s params: %w", e.Task, e.Metric, err)
		}
		if e.Created, err = time.Parse(time.RFC3339Nano, created); err != nil {
			return nil, fmt.Errorf("evaluation %s/%s created_at: %w", e.Task, e.Metric, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query evaluations: %w", err)
	}
	return out, nil
}

// idsIn renders " WHERE col IN (?, ...)" for a non-empty id list. Callers
// return early on an empty list: "no runs" must never widen to "all runs".
func idsIn(col string, ids []int64) (string, []any) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return " WHERE " + col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")", args
}
