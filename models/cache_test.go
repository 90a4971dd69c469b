package models

import (
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// TestCachedDecodingMatchesForward feeds a sequence in chunks of 4, 1, 1
// and 6 tokens through ForwardCached and compares the logits with one
// Forward over the whole sequence.
func TestCachedDecodingMatchesForward(t *testing.T) {
	torchx.Lock()
	const b, l, v = 2, 12, 30
	for _, timeCond := range []bool{false, true} {
		m, _ := newTestModel(t, testConfig(), Spec{VocabIn: v, VocabOut: v, Causal: true, TimeCond: timeCond}, 12)
		if timeCond { // open the adaLN gates so that σ matters
			for _, blk := range m.blocks {
				perturb(blk.ada.b, 0.5)
				perturb(blk.ada.w, 0.5)
			}
		}
		rows := randomRows(b, l, v, 12)
		var sigma *ts.Tensor
		if timeCond {
			sigma = sigmaTensor(0.3, 2)
		}
		full := forwardValues(m, tokenTensor(rows), sigma)

		cache := m.NewKVCache()
		var chunks []*ts.Tensor
		start := 0
		for _, n := range []int{4, 1, 1, 6} {
			part := make([][]int64, b)
			for i := range rows {
				part[i] = rows[i][start : start+n]
			}
			chunks = append(chunks, m.ForwardCached(tokenTensor(part), sigma, cache))
			start += n
		}
		if cache.Len() != l {
			t.Errorf("cache holds %d positions, want %d", cache.Len(), l)
		}
		cached := ts.MustCat(chunks, 1).Float64Values()
		cache.Close()
		if d := maxAbsDiff(full, cached, 0, len(full)); d > 1e-5 {
			t.Errorf("time=%v: cached decoding differs from Forward by %g", timeCond, d)
		}
	}
}
