package results

import (
	"math"
	"slices"
	"testing"
)

// TestPairedHandComputed checks Paired against sums done by hand on three
// sequences of 2 tokens (and 2 bytes) each.
//
// Two seeds: reference R = [2, 4, 3] for both seeds; variant a = [3, 4, 5]
// and [3, 5, 4], whose seed means are [3, 4.5, 4.5]. d = [1, 0.5, 1.5],
// Σd = 3, Σn = 6: Diff = 0.5 nats/token; residuals d − 0.5·2 = [0, −0.5,
// 0.5], Σr² = 0.5, Stderr = √(3/2·0.5)/6 = 0.144338 (significant: 0.5 >
// 1.96·0.1443). Seed by seed: d = [1, 0, 2] and [1, 1, 1], both 0.5.
// Variant b = R + 3 on every sequence (one seed): Diff 1.5, Stderr 0.
// Variant c was scored on other sequences and is skipped.
//
// One seed, bpc: a = [3, 4, 5] against R: d = [1, 0, 2], Diff = 0.5,
// residuals [0, −1, 1], Stderr = √(3/2·2)/6 = √3/6 = 0.288675, both / ln 2;
// 0.5 < 1.96·0.2887 = 0.566: not significant.
func TestPairedHandComputed(t *testing.T) {
	s := newStore(t)
	var runs []Run
	add := func(name, variant string, seed int64, fp string, nats []float64) {
		id, _, err := s.StartRun(RunInfo{Name: name, Sweep: "p", Variant: variant, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		q := SequenceBounds{RunID: id, Task: "test", Fingerprint: fp, K: 4, Nats: nats,
			Tokens: []int64{2, 2, 2}, Bytes: []float64{2, 2, 2}}
		if err := s.AddEvaluations(nil, q); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, Run{ID: id, RunInfo: RunInfo{Name: name, Variant: variant, Seed: seed}})
	}
	add("r1", "ref", 1, "f", []float64{2, 4, 3})
	add("r2", "ref", 2, "f", []float64{2, 4, 3})
	add("a1", "a", 1, "f", []float64{3, 4, 5})
	add("a2", "a", 2, "f", []float64{3, 5, 4})
	add("b1", "b", 1, "f", []float64{5, 7, 6})
	add("c1", "c", 1, "other", []float64{2, 4, 3})

	// a's seed means: [3, 4.5, 4.5]; d = [1, 0.5, 1.5], Σd = 3, Diff = 0.5;
	// residuals d − 1 = [0, −0.5, 0.5], Σr² = 0.5, Stderr = √(1.5·0.5)/6 =
	// 0.144338; significant (0.5 > 0.2829). Seed 1: d = [1, 0, 2] → 0.5;
	// seed 2: d = [1, 1, 1] → 0.5.
	got, err := Paired(s, runs, "ref", "test", UnitNats)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Variant != "a" || got[1].Variant != "b" || got[2].Variant != "c" {
		t.Fatalf("variants %+v", got)
	}
	near := func(what string, g, w float64) {
		t.Helper()
		if math.Abs(g-w) > 1e-9 {
			t.Errorf("%s = %.9f, want %.9f", what, g, w)
		}
	}
	a := got[0]
	near("a diff", a.Diff, 0.5)
	near("a stderr", a.Stderr, math.Sqrt(0.75)/6)
	if !a.Significant || len(a.SeedDiffs) != 2 || a.Sequences != 3 {
		t.Errorf("a: %+v", a)
	}
	near("a seed 1", a.SeedDiffs[0], 0.5)
	near("a seed 2", a.SeedDiffs[1], 0.5)
	b := got[1]
	near("b diff", b.Diff, 1.5)
	near("b stderr", b.Stderr, 0)
	if !b.Significant || !slices.Equal(b.SeedDiffs, []float64{1.5}) {
		t.Errorf("b: %+v", b)
	}
	if got[2].Skip == "" || !math.IsNaN(got[2].Diff) {
		t.Errorf("c should be skipped: %+v", got[2])
	}
	grid := PairedGrid(append(got, PairedDiff{Variant: "d", Diff: -0.3, Stderr: 0.1, Significant: true}), "ref", "test", UnitNats)
	wantRows := [][]string{
		{"variant", "Δ test/nats/token vs ref", "per seed", "95% interval"},
		{"a", "0.50 ± 0.14", "+0.500, +0.500", "excludes 0: worse"},
		{"b", "1.50", "+1.500", "excludes 0: worse"},
		{"c", "—", "—", "scored on other sequences than the reference"},
		{"d", "-0.30 ± 0.10", "", "excludes 0: better"},
	}
	for i := range wantRows {
		if !slices.Equal(grid[i], wantRows[i]) {
			t.Errorf("grid row %d = %q, want %q", i, grid[i], wantRows[i])
		}
	}

	// The single-seed case of the doc comment, in bpc.
	s2 := newStore(t)
	runs = runs[:0]
	s = s2
	add("r1", "ref", 1, "f", []float64{2, 4, 3})
	add("a1", "a", 1, "f", []float64{3, 4, 5})
	got, err = Paired(s, runs, "ref", "test", UnitBPC)
	if err != nil {
		t.Fatal(err)
	}
	near("bpc diff", got[0].Diff, 0.5/math.Ln2)
	near("bpc stderr", got[0].Stderr, math.Sqrt(3)/6/math.Ln2)
	if got[0].Significant {
		t.Errorf("0.5 ± 0.289 marked significant")
	}
	if row := PairedGrid(got, "ref", "test", UnitBPC)[1]; row[1] != "0.72 ± 0.42" || row[3] != "includes 0" {
		t.Errorf("bpc row %q", row)
	}
	if _, err := Paired(s, runs, "nobody", "test", UnitBPC); err == nil {
		t.Error("missing reference accepted")
	}
}
