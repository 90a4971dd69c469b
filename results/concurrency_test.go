package results

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// writeLoad is what one writer (goroutine or process) does: its own run, m
// batches of metrics, an evaluation per batch and a few samples, each write
// its own transaction, as a training loop would.
func writeLoad(s *Store, name string, m int) error {
	id, _, err := s.StartRun(RunInfo{Name: name, Sweep: "load", Variant: "v"})
	if err != nil {
		return err
	}
	for step := range m {
		if err := s.LogMetrics(id, step, SplitTrain, map[string]float64{"loss": 1 / float64(step+1), "lr": 1e-3}); err != nil {
			return err
		}
		if err := s.AddEvaluation(Evaluation{RunID: id, Task: TaskValid, Metric: MetricNLL, Value: float64(step),
			Params: map[string]any{"step": step}}); err != nil {
			return err
		}
	}
	if err := s.AddSamples([]Sample{{RunID: id, Sampler: "a", Steps: 8, Idx: 0}, {RunID: id, Sampler: "a", Steps: 8, Idx: 1}}); err != nil {
		return err
	}
	return s.FinishRun(id, nil)
}

// TestHelperWriter is not a test: it is the body of the writer processes that
// TestConcurrentWriters starts from the test binary.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("RESULTS_HELPER_DB")
	if path == "" {
		t.Skip("helper process of TestConcurrentWriters")
	}
	m, err := strconv.Atoi(os.Getenv("RESULTS_HELPER_M"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := writeLoad(s, os.Getenv("RESULTS_HELPER_NAME"), m); err != nil {
		t.Fatal(err)
	}
}

// N goroutines, each with its own Store (its own connection pool, as separate
// processes would have), plus P child processes write into one file at once.
// Every write must succeed (no SQLITE_BUSY) and every row be there once.
func TestConcurrentWriters(t *testing.T) {
	const n, procs, m = 6, 2, 40
	path := filepath.Join(t.TempDir(), "shared.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var wg sync.WaitGroup
	errs := make([]error, n+procs)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "RESULTS_HELPER_DB="+path, "RESULTS_HELPER_M="+strconv.Itoa(m),
			fmt.Sprintf("RESULTS_HELPER_NAME=proc%d", i))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[n+i] = fmt.Errorf("process %d: %w\n%s", i, err, out)
			}
		})
	}
	for i := range n {
		wg.Go(func() {
			ws, err := Open(path)
			if err != nil {
				errs[i] = err
				return
			}
			defer ws.Close()
			errs[i] = writeLoad(ws, fmt.Sprintf("goroutine%d", i), m)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	writers := n + procs
	for _, tc := range []struct {
		query string
		want  int
	}{
		{`SELECT COUNT(*) FROM runs WHERE status = 'finished'`, writers},
		{`SELECT COUNT(*) FROM metrics`, writers * m * 2},
		{`SELECT COUNT(*) FROM evaluations`, writers * m},
		{`SELECT COUNT(*) FROM samples`, writers * 2},
		{`SELECT COUNT(DISTINCT run_id) FROM metrics`, writers},
	} {
		if got := count(t, s, tc.query); got != tc.want {
			t.Errorf("%s = %d, want %d", tc.query, got, tc.want)
		}
	}
}

// Goroutines sharing one Store (one pool of connections) are just as safe.
func TestSharedStoreWriters(t *testing.T) {
	const n, m = 8, 25
	s := newStore(t)
	id, _, err := s.StartRun(RunInfo{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			for j := range m {
				if err := s.LogMetrics(id, i*m+j, SplitValid, map[string]float64{"loss": 1}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := count(t, s, `SELECT COUNT(*) FROM metrics`); got != n*m {
		t.Fatalf("%d metric rows, want %d", got, n*m)
	}
}
