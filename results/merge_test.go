package results

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// taskDB is a sweep task's own database: one finished run with a row in
// every table, and one failed run.
func taskDB(t *testing.T, name, hash string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, _, err := s.StartRun(RunInfo{Name: name, Sweep: "sw", Variant: "v", ConfigHash: hash, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for step, loss := range []float64{3, 2.5, 2.25} {
		if err := s.LogMetrics(id, step+1, SplitTrain, map[string]float64{"loss": loss}); err != nil {
			t.Fatal(err)
		}
	}
	ev := Evaluation{RunID: id, Task: "valid", Metric: "ppl_bound", Value: 12.5, Stderr: 0.25, N: 4, Params: map[string]any{"k": 2}}
	seqs := SequenceBounds{RunID: id, Task: "valid", Fingerprint: "ab", K: 2, Nats: []float64{1, 2}, Tokens: []int64{3, 4}, Bytes: []float64{3, 4}}
	if err := s.AddEvaluations([]Evaluation{ev}, seqs); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSamples([]Sample{{RunID: id, Sampler: "ar", Steps: 8, Text: "hello", Scores: map[string]float64{"gen_ppl": 40}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(id, nil); err != nil {
		t.Fatal(err)
	}
	failed, _, err := s.StartRun(RunInfo{Name: name + "-broken", ConfigHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(failed, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	return path
}

// counts is the number of rows of each table.
func counts(t *testing.T, s *Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tab := range append([]string{"runs"}, childTables...) {
		var n int
		if err := s.db.QueryRow("SELECT count(*) FROM " + tab).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tab] = n
	}
	return out
}

func TestMerge(t *testing.T) {
	src := taskDB(t, "sw/v/seed1", "h1")
	dst := newStore(t)
	// A local attempt of the same run that failed: replaced by the finished one.
	id, _, _ := dst.StartRun(RunInfo{Name: "sw/v/seed1", ConfigHash: "h1"})
	dst.LogMetrics(id, 1, SplitTrain, map[string]float64{"loss": 9})
	dst.FinishRun(id, errors.New("killed"))

	st, err := dst.Merge(src)
	if err != nil {
		t.Fatal(err)
	}
	if want := (MergeStats{Added: 1, Replaced: 1, Skipped: 1}); st != want {
		t.Errorf("first merge: %+v, want %+v", st, want)
	}
	want := map[string]int{"runs": 1, "metrics": 3, "evaluations": 1, "samples": 1, "sequence_bounds": 1}
	if got := counts(t, dst); !equalCounts(got, want) {
		t.Errorf("rows after merge: %v, want %v", got, want)
	}
	runs, _ := dst.Runs(RunFilter{Names: []string{"sw/v/seed1"}})
	if len(runs) != 1 || runs[0].Status != StatusFinished || runs[0].Variant != "v" || runs[0].Sweep != "sw" {
		t.Fatalf("merged run: %+v", runs)
	}
	pts, _ := dst.Metrics(runs[0].ID, "loss")
	if len(pts) != 3 || pts[2].Value != 2.25 {
		t.Errorf("merged losses: %+v", pts)
	}
	evs, _ := dst.Evaluations([]int64{runs[0].ID})
	if len(evs) != 1 || evs[0].Value != 12.5 || evs[0].Stderr != 0.25 || evs[0].Params["k"] != float64(2) {
		t.Errorf("merged evaluation: %+v", evs)
	}
	sb, _ := dst.SequenceBounds([]int64{runs[0].ID})
	if len(sb) != 1 || sb[0].Nats[1] != 2 || sb[0].Tokens[0] != 3 {
		t.Errorf("merged sequence bounds: %+v", sb)
	}

	// Idempotent: a second merge adds nothing.
	st, err = dst.Merge(src)
	if err != nil {
		t.Fatal(err)
	}
	if want := (MergeStats{Same: 1, Skipped: 1}); st != want {
		t.Errorf("second merge: %+v, want %+v", st, want)
	}
	if got := counts(t, dst); !equalCounts(got, want) {
		t.Errorf("rows after the second merge: %v, want %v", got, want)
	}

	// The same name finished with another config: an error, nothing merged.
	other := taskDB(t, "sw/v/seed1", "h2")
	if _, err := dst.Merge(other); err == nil || !strings.Contains(err.Error(), "run sw/v/seed1 is finished in both") {
		t.Errorf("conflicting merge: %v", err)
	}
	if got := counts(t, dst); !equalCounts(got, want) {
		t.Errorf("rows after a refused merge: %v, want %v", got, want)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
