package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dlmlab/difflm/results"
)

func TestSpliceDoc(t *testing.T) {
	dir := t.TempDir()
	doc := filepath.Join(dir, "study.md")
	prose := "# Study\n\nHand-written intro.\n\n" + docBegin + "\nold table\n" + docEnd + "\n\nReading, by hand.\n"
	if err := os.WriteFile(doc, []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // splicing twice gives the same file
		if err := spliceDoc(doc, "| new | table |\n"); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(doc)
	want := "# Study\n\nHand-written intro.\n\n" + docBegin + "\n| new | table |\n" + docEnd + "\n\nReading, by hand.\n"
	if string(got) != want {
		t.Errorf("spliced doc\n%s\nwant\n%s", got, want)
	}

	bare := filepath.Join(dir, "bare.md")
	os.WriteFile(bare, []byte("no markers\n"+docEnd+"\n"), 0o644)
	if err := spliceDoc(bare, "x"); err == nil || !strings.Contains(err.Error(), bare) || !strings.Contains(err.Error(), "report:begin") {
		t.Errorf("doc without the begin marker: %v", err)
	}
	if err := spliceDoc(filepath.Join(dir, "missing.md"), "x"); err == nil || !strings.Contains(err.Error(), "missing.md") {
		t.Errorf("missing doc: %v", err)
	}
}

func TestRunCosts(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC)
	run := func(variant string, start, end int) results.Run {
		r := results.Run{StartedAt: t0.Add(time.Duration(start) * time.Minute)}
		r.Variant = variant
		if end > 0 {
			r.FinishedAt = t0.Add(time.Duration(end) * time.Minute)
			r.Status = results.StatusFinished
		}
		return r
	}
	failed := run("mdlm", 6, 30) // stopped by hand: it has a finish time but did not finish
	failed.Status = results.StatusFailed
	got := runCosts([]results.Run{run("ar", 0, 4), run("ar", 0, 6), run("mdlm", 6, 16), run("mdlm", 6, 0), failed})
	want := "3 of 5 runs finished, from 2026-11-28 15:00 to 15:16 UTC (16m0s of wall time). Minutes per run (train + eval + sampling): ar 5.0; mdlm 10.0.\n"
	if got != want {
		t.Errorf("runCosts\n got %q\nwant %q", got, want)
	}
	if got := runCosts(nil); got != "0 of 0 runs finished.\n" {
		t.Errorf("no runs: %q", got)
	}
}

func TestCorpusNotes(t *testing.T) {
	store, err := results.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var runs []results.Run
	for _, name := range []string{"a", "b", "c"} {
		id, _, err := store.StartRun(results.RunInfo{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, results.Run{ID: id})
	}
	if got, err := corpusNotes(store, runs); err != nil || got != "" {
		t.Errorf("nothing recorded: %q, %v; want nothing", got, err)
	}
	nan := math.NaN()
	err = store.AddEvaluations([]results.Evaluation{
		{RunID: runs[0].ID, Task: "valid", Metric: results.MetricUNKShare, Value: 0.02, Stderr: nan},
		{RunID: runs[1].ID, Task: "valid", Metric: results.MetricUNKShare, Value: 0.04, Stderr: nan},
		{RunID: runs[0].ID, Task: "wikitext2", Metric: results.MetricUNKShare, Value: 0.25, Stderr: nan},
		{RunID: runs[2].ID, Task: "valid", Metric: results.MetricPPLBound, Value: 9, Stderr: 1},
		{RunID: runs[2].ID, Task: "valid", Metric: results.MetricUnigramPPL, Value: 250.04, Stderr: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := corpusNotes(store, runs)
	want := "\nUnigram model of the training split (add-½; no context) on the same tokens, perplexity: valid 250.0.\n" +
		"\nShare of scored tokens that are UNK (outside the trimmed vocabulary): valid 3.0%; wikitext2 25.0%.\n"
	if err != nil || got != want {
		t.Errorf("unkShares %q, %v\nwant %q", got, err, want)
	}
}

// TestProtocolSection: runs evaluated before the second protocols existed
// get no section; once one has them, the section shows both protocols at
// the largest step count only.
func TestProtocolSection(t *testing.T) {
	store, err := results.Open(filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id, _, err := store.StartRun(results.RunInfo{Name: "s/mdlm/seed1", Sweep: "s", Variant: "mdlm"})
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	steps := func(n int) map[string]any { return map[string]any{results.ParamSteps: n} }
	add := func(evs ...results.Evaluation) {
		t.Helper()
		for i := range evs {
			evs[i].RunID = id
		}
		if err := store.AddEvaluations(evs); err != nil {
			t.Fatal(err)
		}
	}
	add(results.Evaluation{Task: results.TaskLAMBADA, Metric: results.MetricAccuracy, Value: 0.5, Stderr: nan},
		results.Evaluation{Task: results.TaskGen, Metric: results.MetricGenPPL, Value: 900, Stderr: 10, Params: steps(256)})
	f := results.RunFilter{Sweep: "s"}
	if text, md, err := protocolSection(store, f, []int{8, 256}); err != nil || text != "" || md != "" {
		t.Fatalf("runs without the second protocols: %q %q %v, want no section", text, md, err)
	}
	add(results.Evaluation{Task: results.TaskLAMBADA, Metric: results.MetricAccuracyInVocab, Value: 0.625, Stderr: nan},
		results.Evaluation{Task: results.TaskLAMBADA, Metric: results.MetricAccuracyGreedy, Value: 0.25, Stderr: nan},
		results.Evaluation{Task: results.TaskLAMBADA, Metric: results.MetricUNKTargets, Value: 3, Stderr: nan},
		results.Evaluation{Task: results.TaskGen, Metric: results.MetricGenPPLSEDD, Value: 1234, Stderr: 50, Params: steps(256)},
		results.Evaluation{Task: results.TaskGen, Metric: results.MetricGenPPLSEDD, Value: 7777, Stderr: 50, Params: steps(8)},
		results.Evaluation{Task: results.TaskGen, Metric: results.MetricModelCalls, Value: 257, Stderr: nan, Params: steps(256)})
	text, md, err := protocolSection(store, f, []int{8, 256})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lambada/accuracy_in_vocab", "lambada/accuracy_greedy", "lambada/unk_targets",
		"gen/gen_ppl steps=256", "gen/gen_ppl_sedd steps=256", "gen/model_calls steps=256", "0.625", "0.25", "1234 ± 50", "257"} {
		if !strings.Contains(md, want) || !strings.Contains(text, want) {
			t.Errorf("protocol section lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "7777") || strings.Contains(md, "steps=8") {
		t.Errorf("the section shows a step count other than the largest:\n%s", md)
	}
}
