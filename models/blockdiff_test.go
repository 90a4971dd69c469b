package models

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
)

// TestBlockDiffMask checks BD3-LM's mask entry by entry for L = 4, b = 2:
// rows are queries, columns keys, positions 0–3 the noisy copy and 4–7 the
// clean one (blocks {0,1} and {2,3} of each).
func TestBlockDiffMask(t *testing.T) {
	want := [8]string{
		"11000000", // noisy block 0: itself
		"11000000",
		"00111100", // noisy block 1: itself and clean block 0
		"00111100",
		"00001100", // clean block 0: itself
		"00001100",
		"00001111", // clean block 1: clean blocks 0 and 1
		"00001111",
	}
	m := BlockDiffMask(4, 2, gotch.CPU)
	defer m.MustDrop()
	vals := m.Float64Values()
	for q := range 8 {
		for k := range 8 {
			v := vals[q*8+k]
			see := want[q][k] == '1'
			if (see && v != 0) || (!see && !math.IsInf(v, -1)) {
				t.Errorf("mask[%d][%d] = %v, want %s", q, k, v, map[bool]string{true: "0 (visible)", false: "-inf"}[see])
			}
		}
	}
}

// TestBlockDiffusionSeesOnlyWhatItMay: the logits of noisy block j do not
// move when the clean copy of blocks ≥ j or the noisy copy of other blocks
// change, and do move when a clean earlier block changes.
func TestBlockDiffusionSeesOnlyWhatItMay(t *testing.T) {
	const V, L, b = 7, 8, 2
	m, _ := newTestModel(t, testConfig(), Spec{VocabIn: V + 1, VocabOut: V, BlockSize: b}, 3)
	base := randomRows(1, 2*L, V, 5)[0]
	logitsOf := func(x []int64) []float64 { return forwardValues(m, tokenTensor([][]int64{x}), nil) }
	ref := logitsOf(base)
	if got := len(ref); got != 2*L*V {
		t.Fatalf("%d logits, want 2L·V = %d", got, 2*L*V)
	}
	j := 2 // noisy block 2: positions 4, 5
	blockRange := func(x []float64) (int, int) { return j * b * V, (j + 1) * b * V }
	for _, c := range []struct {
		pos   int
		moves bool
		what  string
	}{
		{L + 3, true, "clean block 1 (earlier)"},
		{L + 0, true, "clean block 0 (earlier)"},
		{L + 4, false, "clean block 2 (its own)"},
		{L + 7, false, "clean block 3 (later)"},
		{1, false, "noisy block 0"},
		{7, false, "noisy block 3"},
		{5, true, "noisy block 2 itself"},
	} {
		x := append([]int64(nil), base...)
		x[c.pos] = (x[c.pos] + 1) % V
		from, to := blockRange(ref)
		d := maxAbsDiff(ref, logitsOf(x), from, to)
		if c.moves && d < 1e-6 {
			t.Errorf("changing %s (position %d) left noisy block %d unchanged", c.what, c.pos, j)
		}
		if !c.moves && d > 1e-6 {
			t.Errorf("changing %s (position %d) moved noisy block %d's logits by %g", c.what, c.pos, j, d)
		}
	}
}

// TestForwardBlockMatchesTheFullPass: with clean blocks 0 and 1 committed
// to the cache, a noisy block 2 gets the logits the x_t ⊕ x_0 pass gives
// it, and a second denoising step (no commit) sees the same cache.
func TestForwardBlockMatchesTheFullPass(t *testing.T) {
	const V, L, b = 7, 8, 2
	m, _ := newTestModel(t, testConfig(), Spec{VocabIn: V + 1, VocabOut: V, BlockSize: b}, 3)
	x0 := randomRows(1, L, V, 8)[0]
	xt := append([]int64(nil), x0...)
	xt[4] = V // block 2 noisy: position 4 masked
	full := forwardValues(m, tokenTensor([][]int64{append(append([]int64(nil), xt...), x0...)}), nil)

	cache := m.NewKVCache()
	defer cache.Close()
	for j := range 2 {
		blk := tokenTensor([][]int64{x0[j*b : (j+1)*b]})
		m.ForwardBlock(blk, cache, 0, true).MustDrop()
		blk.MustDrop()
	}
	for step := range 2 {
		blk := tokenTensor([][]int64{xt[4:6]})
		logits := m.ForwardBlock(blk, cache, 0, false)
		got := logits.Float64Values()
		logits.MustDrop()
		blk.MustDrop()
		if d := maxAbsDiff(got, full[4*V:6*V], 0, 2*V); d > 1e-5 {
			t.Errorf("step %d: cached block logits differ from the full pass by %g", step, d)
		}
	}
	if cache.Len() != 4 {
		t.Errorf("cache holds %d positions, want the 4 committed", cache.Len())
	}
}
