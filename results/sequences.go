package results

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
)

// SequenceBounds are the per-sequence values behind one bound evaluation
// (run, task): for each scored sequence s, in pass order, the mean Nats of
// its K draws, its scored Tokens and the UTF-8 Bytes of their text. Two
// runs scored on the same sequences (equal Fingerprint, a hash of the
// scored ids and weights) with the same eval seed share their time draws
// (common random numbers), so the difference of their bounds can be
// judged sequence by sequence (see Paired).
type SequenceBounds struct {
	RunID       int64
	Task        string
	Fingerprint string
	K           int
	Nats        []float64
	Tokens      []int64
	Bytes       []float64 // NaN entries when the vocabulary has no byte lengths
}

// validate reports inconsistent lengths.
func (q SequenceBounds) validate() error {
	if len(q.Tokens) != len(q.Nats) || len(q.Bytes) != len(q.Nats) {
		return fmt.Errorf("sequence bounds %s of run %d: %d nats, %d token counts, %d byte counts",
			q.Task, q.RunID, len(q.Nats), len(q.Tokens), len(q.Bytes))
	}
	return nil
}

// addSequenceBounds writes (or replaces) rows inside tx.
func addSequenceBounds(tx *sql.Tx, seqs []SequenceBounds) error {
	for _, q := range seqs {
		if err := q.validate(); err != nil {
			return err
		}
		// JSON has no NaN: unknown byte counts are stored as -1.
		bytes := make([]float64, len(q.Bytes))
		for i, b := range q.Bytes {
			bytes[i] = b
			if math.IsNaN(b) || math.IsInf(b, 0) {
				bytes[i] = -1
			}
		}
		nats, err := json.Marshal(q.Nats)
		if err != nil {
			return fmt.Errorf("sequence bounds %s of run %d: %w", q.Task, q.RunID, err)
		}
		toks, _ := json.Marshal(q.Tokens)
		byts, _ := json.Marshal(bytes)
		if _, err := tx.Exec(`INSERT INTO sequence_bounds (run_id, task, fingerprint, k, nats, tokens, bytes)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, task) DO UPDATE SET fingerprint = excluded.fingerprint, k = excluded.k,
				nats = excluded.nats, tokens = excluded.tokens, bytes = excluded.bytes`,
			q.RunID, q.Task, q.Fingerprint, q.K, string(nats), string(toks), string(byts)); err != nil {
			return fmt.Errorf("sequence bounds %s of run %d: %w", q.Task, q.RunID, err)
		}
	}
	return nil
}

// SequenceBounds returns the per-sequence bounds of the given runs.
func (s *Store) SequenceBounds(runIDs []int64) ([]SequenceBounds, error) {
	if len(runIDs) == 0 {
		return nil, nil
	}
	cond, args := idsIn("run_id", runIDs)
	rows, err := s.db.Query(`SELECT run_id, task, fingerprint, k, nats, tokens, bytes FROM sequence_bounds`+cond+
		` ORDER BY run_id, task`, args...)
	if err != nil {
		return nil, fmt.Errorf("query sequence bounds: %w", err)
	}
	defer rows.Close()
	var out []SequenceBounds
	for rows.Next() {
		var q SequenceBounds
		var nats, toks, byts string
		if err := rows.Scan(&q.RunID, &q.Task, &q.Fingerprint, &q.K, &nats, &toks, &byts); err != nil {
			return nil, fmt.Errorf("scan sequence bounds: %w", err)
		}
		for _, f := range []struct {
			text string
			dst  any
		}{{nats, &q.Nats}, {toks, &q.Tokens}, {byts, &q.Bytes}} {
			if err := json.Unmarshal([]byte(f.text), f.dst); err != nil {
				return nil, fmt.Errorf("sequence bounds %s of run %d: %w", q.Task, q.RunID, err)
			}
		}
		for i, b := range q.Bytes {
			if b < 0 {
				q.Bytes[i] = math.NaN()
			}
		}
		if err := q.validate(); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query sequence bounds: %w", err)
	}
	return out, nil
}
