package results

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	// The driver registers itself as "sqlite3"; cgo is acceptable here.
	"github.com/mattn/go-sqlite3"
)

// BusyTimeout is how long a connection waits for another writer's lock before
// SQLite reports SQLITE_BUSY. Writers hold the lock for one short transaction
// (a batch of metrics, one run update), so ten seconds is far beyond what a
// sweep of parallel runs needs, and still fails in bounded time when a process
// hangs while holding the lock.
const BusyTimeout = 10 * time.Second

// Store is a handle on one results database. It is safe for concurrent use by
// several goroutines, and several processes may hold a Store on the same file.
type Store struct {
	db   *sql.DB
	path string
}

// dsn builds the mattn/go-sqlite3 connection string. Every pooled connection
// gets the same settings:
//   - WAL journal: readers never block the writer and the writer never blocks
//     readers, so report/plot queries can run while a sweep is training;
//   - busy timeout: a writer waits for the lock instead of failing at once;
//   - _txlock=immediate: every transaction takes the write lock at BEGIN. A
//     deferred transaction that reads first and writes later cannot wait for
//     the lock in WAL mode (its snapshot may be stale, so SQLite returns
//     SQLITE_BUSY at once without calling the busy handler); taking the lock
//     up front makes the busy timeout apply to every write;
//   - foreign keys on (off by default in SQLite), synchronous=NORMAL, which is
//     durable across application crashes in WAL mode and much faster than FULL.
func dsn(path string) string {
	return fmt.Sprintf("%s?_journal_mode=WAL&_busy_timeout=%d&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL",
		path, BusyTimeout.Milliseconds())
}

// Open opens (creating if needed) the results database at path and brings its
// schema up to date. A database written by a newer version of this package is
// refused with an error wrapping ErrSchemaTooNew rather than misread.
func Open(path string) (*Store, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open %q: path must be non-empty and contain no '?'", path)
	}
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := migrateFresh(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

// migrateFresh migrates, waiting out one case the busy timeout does not
// cover: while another process turns a new file into WAL mode (an exclusive
// lock taken by the journal_mode pragma when the connection opens), SQLite
// reports SQLITE_BUSY at once instead of calling the busy handler. Several
// runs of a parallel sweep open a new database at the same moment.
func migrateFresh(db *sql.DB) error {
	deadline := time.Now().Add(BusyTimeout)
	for {
		err := migrate(context.Background(), db, len(migrations()))
		var se sqlite3.Error
		busy := errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
		if !busy || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close releases the database handle.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// SchemaVersion returns the schema version recorded in the database.
func (s *Store) SchemaVersion() (int, error) {
	return schemaVersion(context.Background(), s.db)
}

// withTx runs fn in one write transaction (BEGIN IMMEDIATE, see dsn) and
// commits it, or rolls it back when fn fails. what names the operation in the
// returned error.
func (s *Store) withTx(what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}
