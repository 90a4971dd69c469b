package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// newStore opens a fresh store in a temporary directory.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens the file without migrating, to prepare old or future schemas.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestOpenMigrates(t *testing.T) {
	latest := len(migrations())
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // state of the file before Open
		wantErr error
	}{
		{"empty file", func(*testing.T, string) {}, nil},
		{"already latest", func(t *testing.T, path string) {
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, nil},
		{"version 1 with data", func(t *testing.T, path string) {
			db := rawDB(t, path)
			if err := migrate(context.Background(), db, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`INSERT INTO runs (name, status, started_at) VALUES ('old', 'finished', '2024-01-01T00:00:00Z')`); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"newer schema", func(t *testing.T, path string) {
			db := rawDB(t, path)
			if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
				t.Fatal(err)
			}
		}, ErrSchemaTooNew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.db")
			tc.prepare(t, path)
			s, err := Open(path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, err := s.SchemaVersion(); err != nil || v != latest {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, latest)
			}
			// Reopening is idempotent: same version, no error, data kept.
			before := count(t, s, `SELECT COUNT(*) FROM runs`)
			s2, err := Open(path)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer s2.Close()
			if v, _ := s2.SchemaVersion(); v != latest {
				t.Fatalf("after reopen version %d, want %d", v, latest)
			}
			if after := count(t, s2, `SELECT COUNT(*) FROM runs`); after != before {
				t.Fatalf("runs %d after reopen, %d before", after, before)
			}
			if n := count(t, s, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_sweep_variant'`); n != 1 {
				t.Fatalf("index of migration 2 missing")
			}
		})
	}
}

func TestOpenSettings(t *testing.T) {
	s := newStore(t)
	var mode string
	var fk, timeout int
	for _, q := range []struct {
		pragma string
		dst    any
	}{{"journal_mode", &mode}, {"foreign_keys", &fk}, {"busy_timeout", &timeout}} {
		if err := s.db.QueryRow("PRAGMA " + q.pragma).Scan(q.dst); err != nil {
			t.Fatal(err)
		}
	}
	if mode != "wal" || fk != 1 || timeout != int(BusyTimeout.Milliseconds()) {
		t.Fatalf("journal_mode=%s foreign_keys=%d busy_timeout=%d", mode, fk, timeout)
	}
	// Foreign keys are enforced: metrics of a run that does not exist fail.
	if err := s.LogMetrics(12345, 0, SplitTrain, map[string]float64{"loss": 1}); err == nil {
		t.Fatal("metrics for a missing run were accepted")
	}
	if _, err := Open("bad?name.db"); err == nil {
		t.Fatal("a path with '?' was accepted")
	}
}

// Processes of a sweep open a fresh database at the same moment: the
// migration must run once and every Open succeed.
func TestConcurrentOpenOfFreshDB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := Open(path)
			if err == nil {
				_, _, err = s.StartRun(RunInfo{Name: "r" + string(rune('a'+i))})
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := count(t, s, `SELECT COUNT(*) FROM runs`); got != n {
		t.Fatalf("%d runs, want %d", got, n)
	}
}

// TestMigrationKeepsReferencingRows: rebuilding the runs table (migration
// 5, the interrupted status) keeps every run and the metrics, evaluations,
// samples and sequence bounds that reference it; afterwards a run stopped
// by a cancelled context is recorded as interrupted and resumes.
func TestMigrationKeepsReferencingRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db := rawDB(t, path)
	if err := migrate(context.Background(), db, 4); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO runs (id, name, status, started_at) VALUES (7, 'old', 'failed', '2024-01-01T00:00:00Z')`,
		`INSERT INTO metrics (run_id, step, split, name, value, time) VALUES (7, 1, 'train', 'loss', 2.5, 0)`,
		`INSERT INTO evaluations (run_id, task, metric, value, created_at) VALUES (7, 'valid', 'nll', 1.5, '2024-01-01T00:00:00Z')`,
		`INSERT INTO samples (run_id, sampler, steps, idx, text) VALUES (7, 'ar', 1, 0, 'x')`,
		`INSERT INTO sequence_bounds (run_id, task, fingerprint, k, nats, tokens, bytes) VALUES (7, 'valid', 'f', 1, '[1]', '[1]', '[1]')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, table := range []string{"runs", "metrics", "evaluations", "samples", "sequence_bounds"} {
		if n := count(t, s, "SELECT COUNT(*) FROM "+table); n != 1 {
			t.Errorf("%s: %d rows after the migration, want 1", table, n)
		}
	}
	id, _, err := s.StartRun(RunInfo{Name: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(id, fmt.Errorf("train: interrupted after step 3: %w", context.Canceled)); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.RunStatus("new"); st != StatusInterrupted {
		t.Errorf("status %q, want interrupted", st)
	}
	if _, resumed, err := s.StartRun(RunInfo{Name: "new"}); err != nil || !resumed {
		t.Errorf("interrupted run not resumed: %v, %v", resumed, err)
	}
}
