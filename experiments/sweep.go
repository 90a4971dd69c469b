package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/results"
)

// sweep runs every planned run of cfg.Sweep that is not finished yet, each
// as a child process of this binary (so a crash or a leak in one run
// cannot take the others down), at most sweep.parallel (or -parallel) at
// once, wave by wave: a variant with `after:` starts only when the
// variants it names have finished, and a failed wave stops the sweep. A killed sweep
// started again skips finished runs and resumes the unfinished ones from
// their newest checkpoints; the database upserts keep rows unique.
//
// With mode "eval" it evaluates again (bounds, zero-shot, LAMBADA and the
// generation sweep, with the config's current eval and sampling keys) every
// planned run that has finished, and skips the others: what a protocol
// change needs, without training anything.
func sweep(ctx context.Context, cfg *Config, loaded config.Loaded, o options, mode string) error {
	if !cfg.Sweep.Enabled() {
		return usageError{fmt.Errorf("config %s has no sweep: block", sourceName(loaded))}
	}
	if loaded.Path == "" {
		return usageError{errors.New("a sweep needs a config file (-cfg)")}
	}
	if o.parallel < 0 {
		return usageError{fmt.Errorf("-parallel %d: want at least 1", o.parallel)}
	}
	if o.parallel == 0 {
		o.parallel = max(1, cfg.Sweep.Parallel)
	}
	plan, todo, db, err := pending(cfg, mode)
	if err != nil {
		return err
	}
	if todo, err = onlyVariants(plan, todo, o.only); err != nil {
		return usageError{err}
	}
	if err := checkDependencies(cfg, loaded.Path, o.sets, plan, todo); err != nil {
		return err
	}
	slog.Info("sweep", "name", cfg.Sweep.Name, "runs", len(plan), "to_do", len(todo), "parallel", o.parallel, "db", db)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	threads := cfg.threadCount(o.parallel)

	began := time.Now()
	done := 0
	for first := 0; first < len(todo); {
		last := first
		for last < len(todo) && todo[last].Wave == todo[first].Wave {
			last++
		}
		failed := runWave(ctx, todo[first:last], func(r PlannedRun) error {
			args := []string{"-cfg", loaded.Path, "-mode", mode, "-run-name", r.Name, "-variant", r.Variant,
				"-sweep", cfg.Sweep.Name, "-db", db}
			sets := append(append([]string{}, r.Sets...), o.sets...)
			sets = append(sets, fmt.Sprintf("threads=%d", threads))
			for _, s := range sets {
				args = append(args, "-set", s)
			}
			return runChild(ctx, self, args, r, cfg, o.parallel > 1)
		}, o.parallel, func() {
			done++
			slog.Info("sweep progress", "done", done, "of", len(todo), "elapsed", time.Since(began).Round(time.Second),
				"eta", eta(time.Since(began), done, len(todo)))
		})
		if ctx.Err() != nil {
			return fmt.Errorf("sweep %s interrupted after %d of %d runs; start it again to finish", cfg.Sweep.Name, done, len(todo))
		}
		if len(failed) > 0 {
			msg := ""
			if last < len(todo) {
				msg = fmt.Sprintf("; %d run(s) of later waves, which wait for these, not started", len(todo)-last)
			}
			return fmt.Errorf("sweep %s: %d run(s) failed: %v%s", cfg.Sweep.Name, len(failed), failed, msg)
		}
		first = last
	}
	return nil
}

// runWave runs one wave's runs, at most parallel at once, calling progress
// after each (under a lock), and returns the names of those that failed.
func runWave(ctx context.Context, runs []PlannedRun, start func(PlannedRun) error, parallel int, progress func()) []string {
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
		slots  = make(chan struct{}, parallel)
	)
	for _, r := range runs {
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func(r PlannedRun) {
			defer wg.Done()
			defer func() { <-slots }()
			err := start(r)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, r.Name)
				slog.Error("sweep: run failed", "run", r.Name, "err", err)
			}
			progress()
		}(r)
	}
	wg.Wait()
	return failed
}

// runChild runs one planned run. Alone, its output goes to the terminal;
// in parallel, to <run dir>/log.txt. On cancellation the child gets
// SIGINT, so its trainer writes a checkpoint before it exits.
func runChild(ctx context.Context, self string, args []string, r PlannedRun, cfg *Config, quiet bool) error {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	var out io.Writer = os.Stderr
	if quiet {
		dir := filepath.Join(cfg.OutDir, filepath.FromSlash(r.Name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "log.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
		slog.Info("sweep: started", "run", r.Name, "log", f.Name())
	} else {
		slog.Info("sweep: started", "run", r.Name)
	}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

func eta(elapsed time.Duration, done, total int) time.Duration {
	if done == 0 {
		return 0
	}
	return (elapsed / time.Duration(done) * time.Duration(total-done)).Round(time.Second)
}

// checkDependencies stops a sweep before it starts a run that would fail
// late: a run reads files other runs write (its AR reference, the AR
// run's embeddings for the embedding process), and a results database
// carried to another machine without its run folders would have those
// runs finished and their files gone — the run would train for its whole
// budget and then fail to load them. Each such file must exist, or come
// from a run still to do in an earlier wave.
func checkDependencies(cfg *Config, path string, sets []string, plan, todo []PlannedRun) error {
	producer := map[string]PlannedRun{}
	for _, r := range plan {
		producer[filepath.Clean(filepath.Join(cfg.OutDir, filepath.FromSlash(r.Name), "model.safetensors"))] = r
	}
	pending := map[string]bool{}
	for _, r := range todo {
		pending[r.Name] = true
	}
	for _, r := range todo {
		rc, _, err := loadConfig(path, append(append([]string{}, r.Sets...), sets...))
		if err != nil {
			return usageError{fmt.Errorf("sweep %s: run %s: %w", cfg.Sweep.Name, r.Name, err)}
		}
		var files []string
		if ref := rc.Eval.ARReference; ref != "" && ref != selfReference {
			files = append(files, ref)
		}
		if rc.Process.Name == "embedding" {
			if f, err := forward.SourceFile(rc.Process.Embedding); err == nil {
				files = append(files, f)
			}
		}
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				continue
			}
			p, ok := producer[filepath.Clean(f)]
			switch {
			case ok && pending[p.Name] && p.Wave < r.Wave:
				// written before r starts
			case ok:
				return fmt.Errorf("sweep %s: run %s needs %s, which run %s wrote; it is finished in the database but the file is missing: restore that run's folder (at least model.safetensors)",
					cfg.Sweep.Name, r.Name, f, p.Name)
			default:
				return fmt.Errorf("sweep %s: run %s needs %s, which does not exist and no run of the sweep writes", cfg.Sweep.Name, r.Name, f)
			}
		}
	}
	return nil
}

// onlyVariants keeps the runs of todo that -only names, by variant or by
// run name (all when it is empty); a name that is neither a variant nor a
// run of the plan is an error.
func onlyVariants(plan, todo []PlannedRun, only string) ([]PlannedRun, error) {
	if only == "" {
		return todo, nil
	}
	var known []string
	for _, r := range plan {
		if !slices.Contains(known, r.Variant) {
			known = append(known, r.Variant)
		}
	}
	names := strings.Split(only, ",")
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
		named := slices.ContainsFunc(plan, func(r PlannedRun) bool { return r.Name == names[i] })
		if !named && !slices.Contains(known, names[i]) {
			return nil, fmt.Errorf("-only %s: the sweep has no variant or run %q (variants: %s)", only, names[i], strings.Join(known, ", "))
		}
	}
	var out []PlannedRun
	for _, r := range todo {
		if slices.Contains(names, r.Variant) || slices.Contains(names, r.Name) {
			out = append(out, r)
		}
	}
	return out, nil
}

// pending is the sweep's plan, the runs of it that mode ("run" or "eval")
// has to do, and the sweep's database (absolute).
func pending(cfg *Config, mode string) (plan, todo []PlannedRun, db string, err error) {
	plan = cfg.Sweep.Plan()
	if db, err = filepath.Abs(dbPath(cfg)); err != nil {
		return nil, nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		return nil, nil, "", err
	}
	store, err := results.Open(db)
	if err != nil {
		return nil, nil, "", err
	}
	for _, r := range plan {
		st, err := store.RunStatus(r.Name)
		switch {
		case mode == "eval" && err == nil && st == results.StatusFinished:
			todo = append(todo, r)
		case mode == "eval" && (err == nil || errors.Is(err, results.ErrNotFound)):
			slog.Info("sweep eval: not finished, skipping", "run", r.Name)
		case err == nil && st == results.StatusFinished:
			slog.Info("sweep: finished already, skipping", "run", r.Name)
		case err == nil || errors.Is(err, results.ErrNotFound):
			todo = append(todo, r)
		default:
			store.Close()
			return nil, nil, "", err
		}
	}
	store.Close()
	return plan, todo, db, nil
}
