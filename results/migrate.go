package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrSchemaTooNew reports a database whose schema version is beyond the
// migrations this build knows: an older binary must not write into tables it
// does not understand.
var ErrSchemaTooNew = errors.New("database schema is newer than this program")

// migration is one step of the schema history. Steps are only ever appended:
// the version of a database is the number of steps applied to it, recorded in
// PRAGMA user_version (stored in the file header, so it commits atomically
// with the step itself).
type migration struct {
	name string
	sql  string
}

// migrations returns the ordered schema history. It is a function rather than
// a package variable so that no package-level state can be mutated.
//
// Conventions: times of runs and evaluations are RFC 3339 UTC text (readable in
// the sqlite3 shell); metric times are Unix seconds (REAL), compact for the
// many metric rows. A NULL value column stands for NaN, because SQLite stores
// a bound NaN as NULL: a diverged loss is recorded, not rejected.
func migrations() []migration {
	return []migration{
		{name: "initial tables", sql: `
CREATE TABLE runs (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	sweep        TEXT NOT NULL DEFAULT '',
	variant      TEXT NOT NULL DEFAULT '',
	config_yaml  TEXT NOT NULL DEFAULT '',
	config_hash  TEXT NOT NULL DEFAULT '',
	code_version TEXT NOT NULL DEFAULT '',
	device       TEXT NOT NULL DEFAULT '',
	seed         INTEGER NOT NULL DEFAULT 0,
	tags         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags)),
	status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
	error        TEXT NOT NULL DEFAULT '',
	attempts     INTEGER NOT NULL DEFAULT 1,
	started_at   TEXT NOT NULL,
	finished_at  TEXT
);
CREATE TABLE metrics (
	run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	step   INTEGER NOT NULL,
	split  TEXT NOT NULL CHECK (split IN ('train', 'valid')),
	name   TEXT NOT NULL,
	value  REAL,
	time   REAL NOT NULL,
	PRIMARY KEY (run_id, name, split, step)
) WITHOUT ROWID;
CREATE TABLE evaluations (
	id         INTEGER PRIMARY KEY,
	run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	task       TEXT NOT NULL,
	metric     TEXT NOT NULL,
	params     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params)),
	value      REAL,
	stderr     REAL,
	n          INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	UNIQUE (run_id, task, metric, params)
);
CREATE TABLE samples (
	run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	sampler      TEXT NOT NULL,
	steps        INTEGER NOT NULL,
	idx          INTEGER NOT NULL,
	text         TEXT NOT NULL,
	scores       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(scores)),
	model_calls  INTEGER NOT NULL DEFAULT 0,
	tokens_per_s REAL,
	PRIMARY KEY (run_id, sampler, steps, idx)
);`},
		{name: "indexes for report queries", sql: `
CREATE INDEX runs_sweep_variant ON runs (sweep, variant);
CREATE INDEX evaluations_task_metric ON evaluations (task, metric);`},
		{name: "per-sequence bounds for paired comparisons", sql: `
CREATE TABLE sequence_bounds (
	run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
	task        TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	k           INTEGER NOT NULL,
	nats        TEXT NOT NULL CHECK (json_valid(nats)),
	tokens      TEXT NOT NULL CHECK (json_valid(tokens)),
	bytes       TEXT NOT NULL CHECK (json_valid(bytes)),
	PRIMARY KEY (run_id, task)
);`},
		{name: "sample provenance (sampling dtype, gen-ppl protocol)", sql: `
ALTER TABLE samples ADD COLUMN meta TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(meta));`},
		// SQLite cannot alter a CHECK constraint: the table is rebuilt (with
		// foreign keys off, see migrate, so that dropping the old one does
		// not cascade into the rows that reference it).
		{name: "runs may be interrupted", sql: `
CREATE TABLE runs_new (
	id           INTEGER PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	sweep        TEXT NOT NULL DEFAULT '',
	variant      TEXT NOT NULL DEFAULT '',
	config_yaml  TEXT NOT NULL DEFAULT '',
	config_hash  TEXT NOT NULL DEFAULT '',
	code_version TEXT NOT NULL DEFAULT '',
	device       TEXT NOT NULL DEFAULT '',
	seed         INTEGER NOT NULL DEFAULT 0,
	tags         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(tags)),
	status       TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
	error        TEXT NOT NULL DEFAULT '',
	attempts     INTEGER NOT NULL DEFAULT 1,
	started_at   TEXT NOT NULL,
	finished_at  TEXT
);
INSERT INTO runs_new SELECT * FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_sweep_variant ON runs (sweep, variant);`},
	}
}

// schemaVersion reads PRAGMA user_version.
func schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrate applies the steps between the database's version and target in one
// write transaction. Because the transaction takes the write lock at BEGIN,
// processes that open a fresh database at the same moment serialise here and
// the later ones find the work done.
//
// It runs on one connection with foreign keys off (a pragma that cannot
// change inside a transaction), so that a step rebuilding a table does not
// cascade deletes into the tables that reference it, and checks the keys
// before it commits.
func migrate(ctx context.Context, db *sql.DB, target int) error {
	steps := migrations()
	if target > len(steps) {
		return fmt.Errorf("migrate to %d: only %d migrations exist", target, len(steps))
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.ExecContext(ctx, "PRAGMA foreign_keys = ON")
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	cur, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if cur > len(steps) {
		return fmt.Errorf("schema version %d, this program knows up to %d: %w", cur, len(steps), ErrSchemaTooNew)
	}
	for i := cur; i < target; i++ {
		if _, err := tx.ExecContext(ctx, steps[i].sql); err != nil {
			return fmt.Errorf("migration %d (%s): %w", i+1, steps[i].name, err)
		}
	}
	if cur < target {
		var bad int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM pragma_foreign_key_check").Scan(&bad); err != nil || bad > 0 {
			return fmt.Errorf("migrate: foreign keys broken after migration (%d rows, %v)", bad, err)
		}
		// PRAGMA takes no bound parameters; target is an int we control.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", target)); err != nil {
			return fmt.Errorf("set schema version %d: %w", target, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
