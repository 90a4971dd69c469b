package results

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
)

// Sample is one generated sequence with what was measured on it.
type Sample struct {
	RunID      int64
	Sampler    string // e.g. "ancestral", "analytic", "remdm-cap"
	Steps      int    // sampling steps
	Idx        int    // index of the sample within (run, sampler, steps)
	Text       string
	Scores     map[string]float64 // per-sample scores, e.g. {"gen_ppl": 41.2, "entropy": 5.6}
	ModelCalls int64
	TokensPerS float64
	// Meta records how the sample was made and scored, e.g. {"dtype":
	// "float64", "gen_ppl_protocol": "mdlm"}.
	Meta map[string]string
}

// AddSamples records samples in one transaction; a sample with the same
// (run, sampler, steps, idx) as a stored one replaces it.
func (s *Store) AddSamples(ss []Sample) error {
	if len(ss) == 0 {
		return nil
	}
	return s.withTx(fmt.Sprintf("add %d samples", len(ss)), func(tx *sql.Tx) error {
		stmt, err := tx.Prepare(`INSERT INTO samples (run_id, sampler, steps, idx, text, scores, model_calls, tokens_per_s, meta)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, sampler, steps, idx) DO UPDATE SET text = excluded.text, scores = excluded.scores,
				model_calls = excluded.model_calls, tokens_per_s = excluded.tokens_per_s, meta = excluded.meta`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, x := range ss {
			scores, err := marshalScores(x.Scores)
			if err != nil {
				return fmt.Errorf("sample %d scores: %w", x.Idx, err)
			}
			meta, err := marshalJSON(x.Meta)
			if err != nil {
				return fmt.Errorf("sample %d meta: %w", x.Idx, err)
			}
			if _, err := stmt.Exec(x.RunID, x.Sampler, x.Steps, x.Idx, x.Text, scores, x.ModelCalls, sqlFloat(x.TokensPerS), meta); err != nil {
				return fmt.Errorf("sample %s/%d/%d of run %d: %w", x.Sampler, x.Steps, x.Idx, x.RunID, err)
			}
		}
		return nil
	})
}

// Samples returns the samples of a run ordered by sampler, steps and index.
func (s *Store) Samples(runID int64) ([]Sample, error) {
	rows, err := s.db.Query(`SELECT sampler, steps, idx, text, scores, model_calls, tokens_per_s, meta FROM samples
		WHERE run_id = ? ORDER BY sampler, steps, idx`, runID)
	if err != nil {
		return nil, fmt.Errorf("query samples of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		x := Sample{RunID: runID}
		var scores, meta string
		var tps sql.NullFloat64
		if err := rows.Scan(&x.Sampler, &x.Steps, &x.Idx, &x.Text, &scores, &x.ModelCalls, &tps, &meta); err != nil {
			return nil, fmt.Errorf("scan sample of run %d: %w", runID, err)
		}
		x.TokensPerS = goFloat(tps)
		if x.Scores, err = unmarshalScores(scores); err != nil {
			return nil, fmt.Errorf("sample %s/%d/%d scores: %w", x.Sampler, x.Steps, x.Idx, err)
		}
		if err := json.Unmarshal([]byte(meta), &x.Meta); err != nil {
			return nil, fmt.Errorf("sample %s/%d/%d meta: %w", x.Sampler, x.Steps, x.Idx, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query samples of run %d: %w", runID, err)
	}
	return out, nil
}

// SampleStat summarises one quantity over the samples of one run drawn with
// one sampler and number of steps: tokens_per_s, model_calls, or a key of the
// samples' scores.
type SampleStat struct {
	RunID   int64
	Sampler string
	Steps   int
	Metric  string
	N       int64
	Mean    float64
	Stderr  float64 // standard error of the mean; NaN for one sample
}

// SampleStats aggregates the samples of the given runs in SQL, so that the
// report does not load sample texts. NaN values (NULL) are left out.
func (s *Store) SampleStats(runIDs []int64) ([]SampleStat, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	cond, args := idsIn("s.run_id", runIDs)
	// One row per (run, sampler, steps, quantity): the two fixed columns and
	// every numeric score key (json_each expands the scores object).
	q := `WITH v AS (
		SELECT run_id, sampler, steps, 'tokens_per_s' AS metric, tokens_per_s AS x FROM samples s` + cond + `
		UNION ALL
		SELECT run_id, sampler, steps, 'model_calls', CAST(model_calls AS REAL) FROM samples s` + cond + `
		UNION ALL
		SELECT s.run_id, s.sampler, s.steps, j.key, j.value FROM samples s, json_each(s.scores) j` + cond + `
			AND j.type IN ('integer', 'real'))
	SELECT run_id, sampler, steps, metric, COUNT(x), AVG(x), AVG(x * x) FROM v WHERE x IS NOT NULL
	GROUP BY run_id, sampler, steps, metric ORDER BY run_id, sampler, steps, metric`
	all := append(append(append([]any{}, args...), args...), args...)
	rows, err := s.db.Query(q, all...)
	if err != nil {
		return nil, fmt.Errorf("query sample stats: %w", err)
	}
	defer rows.Close()
	var out []SampleStat
	for rows.Next() {
		var st SampleStat
		var meanSq float64
		if err := rows.Scan(&st.RunID, &st.Sampler, &st.Steps, &st.Metric, &st.N, &st.Mean, &meanSq); err != nil {
			return nil, fmt.Errorf("scan sample stat: %w", err)
		}
		st.Stderr = math.NaN()
		if st.N > 1 {
			n := float64(st.N)
			variance := math.Max(0, meanSq-st.Mean*st.Mean) * n / (n - 1)
			st.Stderr = math.Sqrt(variance / n)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query sample stats: %w", err)
	}
	return out, nil
}
