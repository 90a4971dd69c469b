package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// MergeStats counts what Merge did with the source's runs.
type MergeStats struct {
	Added    int // runs new to the destination, or replacing an unfinished one there
	Same     int // finished runs already there from the same config: left as they are
	Skipped  int // source runs not finished (still running, failed): left out
	Replaced int // of Added, how many replaced an unfinished run of the same name
}

// Merge folds the runs of the database at path — a sweep task's own file,
// written beside its run on a cluster (experiments -sweep-task) — into s,
// in one transaction with all their metrics, evaluations, samples and
// per-sequence bounds. It is idempotent: a run already finished in s with
// the same config hash is left alone, so merging twice adds nothing. An
// unfinished run of the same name in s (a local attempt that failed) is
// replaced by a finished one; a finished one with another config is an
// error naming the run, and nothing is merged.
func (s *Store) Merge(path string) (MergeStats, error) {
	var st MergeStats
	src, err := Open(path) // brings the source's schema up to date
	if err != nil {
		return st, err
	}
	if err := src.Close(); err != nil {
		return st, err
	}
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return st, fmt.Errorf("merge %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ATTACH DATABASE ? AS src", path); err != nil {
		return st, fmt.Errorf("merge %s: attach: %w", path, err)
	}
	defer conn.ExecContext(ctx, "DETACH DATABASE src")
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("merge %s: begin: %w", path, err)
	}
	if err := mergeTx(ctx, tx, &st); err != nil {
		tx.Rollback()
		return MergeStats{}, fmt.Errorf("merge %s into %s: %w", path, s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return MergeStats{}, fmt.Errorf("merge %s: commit: %w", path, err)
	}
	return st, nil
}

// childTables hold rows that belong to a run (column run_id).
var childTables = []string{"metrics", "evaluations", "samples", "sequence_bounds"}

func mergeTx(ctx context.Context, tx *sql.Tx, st *MergeStats) error {
	type srcRun struct {
		id                 int64
		name, hash, status string
	}
	rows, err := tx.QueryContext(ctx, "SELECT id, name, config_hash, status FROM src.runs ORDER BY id")
	if err != nil {
		return err
	}
	var runs []srcRun
	for rows.Next() {
		var r srcRun
		if err := rows.Scan(&r.id, &r.name, &r.hash, &r.status); err != nil {
			rows.Close()
			return err
		}
		runs = append(runs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	runCols, err := columns(ctx, tx, "runs", "id")
	if err != nil {
		return err
	}
	for _, r := range runs {
		if Status(r.status) != StatusFinished {
			st.Skipped++
			continue
		}
		var id int64
		var hash, status string
		err := tx.QueryRowContext(ctx, "SELECT id, config_hash, status FROM main.runs WHERE name = ?", r.name).Scan(&id, &hash, &status)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case Status(status) == StatusFinished && hash == r.hash:
			st.Same++
			continue
		case Status(status) == StatusFinished:
			return fmt.Errorf("run %s is finished in both with different configs (hash %s here, %s in the source): rename one", r.name, hash, r.hash)
		default:
			if _, err := tx.ExecContext(ctx, "DELETE FROM main.runs WHERE id = ?", id); err != nil {
				return err
			}
			st.Replaced++
		}
		cols := strings.Join(runCols, ", ")
		res, err := tx.ExecContext(ctx, "INSERT INTO main.runs ("+cols+") SELECT "+cols+" FROM src.runs WHERE id = ?", r.id)
		if err != nil {
			return fmt.Errorf("run %s: %w", r.name, err)
		}
		newID, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for _, t := range childTables {
			exclude := []string{"run_id"}
			if t == "evaluations" {
				exclude = append(exclude, "id")
			}
			cs, err := columns(ctx, tx, t, exclude...)
			if err != nil {
				return err
			}
			list := strings.Join(cs, ", ")
			q := fmt.Sprintf("INSERT INTO main.%s (run_id, %s) SELECT ?, %s FROM src.%s WHERE run_id = ?", t, list, list, t)
			if _, err := tx.ExecContext(ctx, q, newID, r.id); err != nil {
				return fmt.Errorf("run %s: %s: %w", r.name, t, err)
			}
		}
		st.Added++
	}
	return nil
}

// columns lists a table's columns (of the destination, which has the same
// schema as the source once both are migrated), without the excluded ones.
func columns(ctx context.Context, tx *sql.Tx, table string, exclude ...string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info(?, 'main')", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		skip := false
		for _, e := range exclude {
			skip = skip || e == name
		}
		if !skip {
			out = append(out, name)
		}
	}
	return out, rows.Err()
}
