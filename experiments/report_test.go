package main

import (
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
		}
		return r
	}
	got := runCosts([]results.Run{run("ar", 0, 4), run("ar", 0, 6), run("mdlm", 6, 16), run("mdlm", 6, 0)})
	want := "3 of 4 runs finished, from 2026-11-28 15:00 to 15:16 UTC (16m0s of wall time). Minutes per run (train + eval + sampling): ar 5.0; mdlm 10.0.\n"
	if got != want {
		t.Errorf("runCosts\n got %q\nwant %q", got, want)
	}
	if got := runCosts(nil); got != "0 of 0 runs finished.\n" {
		t.Errorf("no runs: %q", got)
	}
}
