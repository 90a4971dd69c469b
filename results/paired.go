package results

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Units of a paired difference.
const (
	UnitNats = "nats/token"
	UnitBPC  = "bpc" // bits per character (per UTF-8 byte for BPE)
)

// ErrNoReference reports a reference variant with nothing to compare
// against yet (no finished run with per-sequence bounds).
var ErrNoReference = errors.New("no reference bounds")

// SignificanceZ is the two-sided 95% normal quantile: a difference is
// marked significant when its interval Diff ± 1.96·Stderr excludes 0.
const SignificanceZ = 1.96

// PairedDiff compares one variant's bound with the reference variant's on
// the same sequences.
//
// Each variant's per-sequence bounds are first averaged over its seeds
// (m_s); then d_s = m_s(variant) − m_s(reference), and with n_s the
// sequence's tokens (bytes for bpc)
//
//	Diff = Σ d_s / Σ n_s,   Stderr = √(S/(S−1) · Σ (d_s − Diff·n_s)²) / Σ n_s
//
// (the ratio estimator's standard error over S sequences; divided by ln 2
// for bpc). Because both sides saw the same sequences and, through
// eval.seed, the same time draws, what they share cancels in d_s: this is
// far smaller than the two bounds' own errors combined, and it covers both
// the Monte Carlo noise of the estimator and the choice of test sequences.
// It does not cover training noise: SeedDiffs, the difference seed by seed
// (variant seed i against reference seed i, for the seeds both have), shows
// that spread.
type PairedDiff struct {
	Variant     string
	Diff        float64   // variant − reference, in the unit asked for
	Stderr      float64   // paired standard error of Diff
	SeedDiffs   []float64 // Diff per seed both variants have, in seed order
	Sequences   int
	Significant bool   // |Diff| > SignificanceZ·Stderr
	Skip        string // non-empty: not compared, and why
}

// Paired compares every variant of runs with the reference variant on task,
// in unit (UnitNats or UnitBPC). Variants come in label order, the
// reference itself left out; one whose sequences differ from the
// reference's (another data config) or that lacks per-sequence bounds is
// returned with Skip set.
func Paired(s *Store, runs []Run, reference, task, unit string) ([]PairedDiff, error) {
	if unit != UnitNats && unit != UnitBPC {
		return nil, fmt.Errorf("paired: unit %q is not %s or %s", unit, UnitNats, UnitBPC)
	}
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	all, err := s.SequenceBounds(ids)
	if err != nil {
		return nil, fmt.Errorf("paired: %w", err)
	}
	seqOf := map[int64]SequenceBounds{}
	for _, q := range all {
		if q.Task == task {
			seqOf[q.RunID] = q
		}
	}
	bySeed := map[string]map[int64]SequenceBounds{} // variant -> seed -> bounds
	for _, r := range runs {
		q, ok := seqOf[r.ID]
		if !ok {
			continue
		}
		if bySeed[r.Label()] == nil {
			bySeed[r.Label()] = map[int64]SequenceBounds{}
		}
		bySeed[r.Label()][r.Seed] = q
	}
	ref := bySeed[reference]
	if len(ref) == 0 {
		return nil, fmt.Errorf("paired: reference variant %q has no per-sequence bounds on %s (report.reference; run -mode eval on it): %w", reference, task, ErrNoReference)
	}
	var fp string
	for _, q := range ref {
		fp = q.Fingerprint
		break
	}
	variants := map[string]bool{}
	for _, r := range runs {
		variants[r.Label()] = true
	}
	var out []PairedDiff
	for _, v := range slices.Sorted(maps.Keys(variants)) {
		if v == reference {
			continue
		}
		d := PairedDiff{Variant: v, Diff: math.NaN(), Stderr: math.NaN()}
		seeds := bySeed[v]
		switch {
		case len(seeds) == 0:
			d.Skip = "no per-sequence bounds"
		case !sameSequences(seeds, fp) || !sameSequences(ref, fp):
			d.Skip = "scored on other sequences than the reference"
		}
		if d.Skip == "" {
			den := denominators(anyOf(ref), unit)
			d.Diff, d.Stderr = pairedStats(meanNats(seeds), meanNats(ref), den, unit)
			d.Sequences = len(den)
			for _, seed := range slices.Sorted(maps.Keys(seeds)) {
				if r, ok := ref[seed]; ok {
					diff, _ := pairedStats(seeds[seed].Nats, r.Nats, den, unit)
					d.SeedDiffs = append(d.SeedDiffs, diff)
				}
			}
			d.Significant = math.Abs(d.Diff) > SignificanceZ*d.Stderr
		}
		out = append(out, d)
	}
	return out, nil
}

func sameSequences(m map[int64]SequenceBounds, fp string) bool {
	for _, q := range m {
		if q.Fingerprint != fp {
			return false
		}
	}
	return true
}

func anyOf(m map[int64]SequenceBounds) SequenceBounds {
	keys := slices.Sorted(maps.Keys(m))
	return m[keys[0]]
}

// denominators are n_s: tokens, or bytes for bpc.
func denominators(q SequenceBounds, unit string) []float64 {
	out := make([]float64, len(q.Nats))
	for i := range out {
		if unit == UnitBPC {
			out[i] = q.Bytes[i]
		} else {
			out[i] = float64(q.Tokens[i])
		}
	}
	return out
}

// meanNats averages per-sequence nats over seeds.
func meanNats(m map[int64]SequenceBounds) []float64 {
	var out []float64
	for _, q := range m {
		if out == nil {
			out = make([]float64, len(q.Nats))
		}
		for i, v := range q.Nats {
			out[i] += v / float64(len(m))
		}
	}
	return out
}

// pairedStats is Diff and Stderr of PairedDiff for per-sequence values a
// and b over denominators n.
func pairedStats(a, b, n []float64, unit string) (float64, float64) {
	S := len(n)
	if S == 0 || len(a) != S || len(b) != S {
		return math.NaN(), math.NaN()
	}
	var sd, sn float64
	for i := range n {
		sd += a[i] - b[i]
		sn += n[i]
	}
	diff := sd / sn
	se := math.NaN()
	if S > 1 {
		var ss float64
		for i := range n {
			r := a[i] - b[i] - diff*n[i]
			ss += r * r
		}
		se = math.Sqrt(float64(S)/float64(S-1)*ss) / sn
	}
	if unit == UnitBPC {
		diff, se = diff/math.Ln2, se/math.Ln2
	}
	return diff, se
}

// PairedGrid renders diffs (of one task and unit, against reference) as a
// header row and one row per variant: the difference with its paired
// standard error, the per-seed differences, and a mark when the 95%
// interval excludes 0 ("better" or "worse": lower bounds are better).
func PairedGrid(diffs []PairedDiff, reference, task, unit string) [][]string {
	head := []string{"variant", fmt.Sprintf("Δ %s/%s vs %s", task, unit, reference), "per seed", "95% interval"}
	rows := [][]string{head}
	for _, d := range diffs {
		if d.Skip != "" {
			rows = append(rows, []string{d.Variant, "—", "—", d.Skip})
			continue
		}
		cell := Cell{Value: d.Diff, Err: d.Stderr, N: 1, OK: true}.String()
		var seeds []string
		for _, v := range d.SeedDiffs {
			seeds = append(seeds, fmt.Sprintf("%+.3f", v))
		}
		mark := "includes 0"
		switch {
		case d.Significant && d.Diff < 0:
			mark = "excludes 0: better"
		case d.Significant:
			mark = "excludes 0: worse"
		}
		rows = append(rows, []string{d.Variant, cell, strings.Join(seeds, ", "), mark})
	}
	return rows
}

// PairedMarkdown and PairedText render PairedGrid.
func PairedMarkdown(rows [][]string) string { return gridMarkdown(rows) }
func PairedText(rows [][]string) string     { return gridText(rows) }

// PairedFootnote explains the paired table.
const PairedFootnote = "Δ is the variant's bound minus the reference's on the same sequences with the same eval draws (seed-averaged); ± is the paired standard error over sequences (Monte Carlo noise and the choice of test sequences, not training noise: see per seed). The interval is Δ ± 1.96·SE."
