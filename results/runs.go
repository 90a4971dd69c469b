package results

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is the life-cycle state of a run.
type Status string

// Run states. A run is "running" from StartRun until FinishRun; a process
// killed in between leaves it "running", and the next StartRun with the same
// name resumes it.
const (
	StatusRunning  Status = "running"
	StatusFinished Status = "finished"
	StatusFailed   Status = "failed"
	// StatusInterrupted is a run stopped by a signal (its context
	// cancelled) after checkpointing: started again, it resumes.
	StatusInterrupted Status = "interrupted"
)

var (
	// ErrFinished is returned by StartRun for a name whose run already
	// finished: a sweep that is restarted skips the runs it completed.
	ErrFinished = errors.New("run already finished")
	// ErrConfigMismatch is returned by StartRun when an unfinished run of the
	// same name was started from a different configuration: resuming it would
	// mix two experiments under one name.
	ErrConfigMismatch = errors.New("run exists with a different config hash")
	// ErrNotFound reports a run name or id that is not in the store.
	ErrNotFound = errors.New("run not found")
)

// RunInfo describes a run as its launcher knows it before training starts.
type RunInfo struct {
	Name        string // unique across the store, e.g. "owt-mdlm-seed1"
	Sweep       string // sweep the run belongs to; "" for a lone run
	Variant     string // comparison label; seeds of one variant share it
	ConfigYAML  string
	ConfigHash  string
	CodeVersion string // e.g. git describe output
	Device      string
	Seed        int64
	Tags        map[string]any // free-form, stored as JSON
}

// Run is a stored run.
type Run struct {
	ID int64
	RunInfo
	Status     Status
	Error      string
	Attempts   int // 1 + the number of times the run was resumed
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
}

// Label is the name a run is compared under: its variant, or its own name when
// it has no variant.
func (r Run) Label() string {
	if r.Variant != "" {
		return r.Variant
	}
	return r.Name
}

// StartRun registers a run, or resumes it. A new name is inserted as running
// (resumed=false). An existing run that is running (its process was killed)
// or failed is set back to running and returned with resumed=true, so that
// its metrics continue under the same id; its launch fields (code version,
// device, config text, tags) are refreshed. A finished run gives ErrFinished,
// and a config hash that differs from the stored one gives ErrConfigMismatch.
//
// The store does not detect two live processes sharing a name: the launcher
// (sweep) guarantees one process per run name.
func (s *Store) StartRun(info RunInfo) (id int64, resumed bool, err error) {
	if info.Name == "" {
		return 0, false, errors.New("start run: empty name")
	}
	tags, err := marshalJSON(info.Tags)
	if err != nil {
		return 0, false, fmt.Errorf("start run %q: tags: %w", info.Name, err)
	}
	now := formatTime(time.Now())
	err = s.withTx(fmt.Sprintf("start run %q", info.Name), func(tx *sql.Tx) error {
		var status Status
		var hash string
		err := tx.QueryRow(`SELECT id, status, config_hash FROM runs WHERE name = ?`, info.Name).Scan(&id, &status, &hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res, err := tx.Exec(`INSERT INTO runs (name, sweep, variant, config_yaml, config_hash, code_version,
				device, seed, tags, status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				info.Name, info.Sweep, info.Variant, info.ConfigYAML, info.ConfigHash, info.CodeVersion,
				info.Device, info.Seed, tags, StatusRunning, now)
			if err != nil {
				return err
			}
			id, err = res.LastInsertId()
			return err
		case err != nil:
			return err
		case status == StatusFinished:
			return ErrFinished
		case hash != "" && info.ConfigHash != "" && hash != info.ConfigHash:
			return fmt.Errorf("%w (stored %s, given %s)", ErrConfigMismatch, hash, info.ConfigHash)
		}
		resumed = true
		_, err = tx.Exec(`UPDATE runs SET status = ?, error = '', finished_at = NULL, attempts = attempts + 1,
			config_yaml = ?, config_hash = ?, code_version = ?, device = ?, tags = ? WHERE id = ?`,
			StatusRunning, info.ConfigYAML, info.ConfigHash, info.CodeVersion, info.Device, tags, id)
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return id, resumed, nil
}

// FinishRun marks a run finished when runErr is nil, and failed (keeping
// runErr's text) otherwise. A failed run is resumed by the next StartRun.
func (s *Store) FinishRun(id int64, runErr error) error {
	status, msg := StatusFinished, ""
	switch {
	case errors.Is(runErr, context.Canceled):
		status, msg = StatusInterrupted, runErr.Error()
	case runErr != nil:
		status, msg = StatusFailed, runErr.Error()
	}
	return s.withTx(fmt.Sprintf("finish run %d", id), func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE id = ?`,
			status, msg, formatTime(time.Now()), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// RunStatus returns the status of the named run, or ErrNotFound.
func (s *Store) RunStatus(name string) (Status, error) {
	var st Status
	err := s.db.QueryRow(`SELECT status FROM runs WHERE name = ?`, name).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("run %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("run %q status: %w", name, err)
	}
	return st, nil
}

// RunFilter selects runs; empty fields match everything, and a run must match
// every non-empty field.
type RunFilter struct {
	Sweep    string
	Variants []string
	Names    []string
	Status   []Status
}

// where renders the filter as a SQL condition with its arguments.
func (f RunFilter) where() (string, []any) {
	conds := []string{"1 = 1"}
	var args []any
	if f.Sweep != "" {
		conds = append(conds, "sweep = ?")
		args = append(args, f.Sweep)
	}
	in := func(col string, n int) string {
		return col + " IN (" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
	}
	if len(f.Variants) > 0 {
		conds = append(conds, in("variant", len(f.Variants)))
		for _, v := range f.Variants {
			args = append(args, v)
		}
	}
	if len(f.Names) > 0 {
		conds = append(conds, in("name", len(f.Names)))
		for _, v := range f.Names {
			args = append(args, v)
		}
	}
	if len(f.Status) > 0 {
		conds = append(conds, in("status", len(f.Status)))
		for _, v := range f.Status {
			args = append(args, v)
		}
	}
	return strings.Join(conds, " AND "), args
}

// Runs returns the runs matching f, in the order they were first started.
func (s *Store) Runs(f RunFilter) ([]Run, error) {
	cond, args := f.where()
	rows, err := s.db.Query(`SELECT id, name, sweep, variant, config_yaml, config_hash, code_version, device,
		seed, tags, status, error, attempts, started_at, finished_at FROM runs WHERE `+cond+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var tags, started string
		var finished sql.NullString
		if err := rows.Scan(&r.ID, &r.Name, &r.Sweep, &r.Variant, &r.ConfigYAML, &r.ConfigHash, &r.CodeVersion,
			&r.Device, &r.Seed, &tags, &r.Status, &r.Error, &r.Attempts, &started, &finished); err != nil {
			return nil, fmt.Errorf("scan run: %w", err)
		}
		if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
			return nil, fmt.Errorf("run %q tags: %w", r.Name, err)
		}
		if r.StartedAt, err = time.Parse(time.RFC3339Nano, started); err != nil {
			return nil, fmt.Errorf("run %q started_at: %w", r.Name, err)
		}
		if finished.Valid {
			if r.FinishedAt, err = time.Parse(time.RFC3339Nano, finished.String); err != nil {
				return nil, fmt.Errorf("run %q finished_at: %w", r.Name, err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query runs: %w", err)
	}
	return out, nil
}
