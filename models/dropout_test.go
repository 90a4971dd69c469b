package models

import (
	"maps"
	"slices"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestDropoutNoiseSameAsDropout: a training pass whose dropout noise is
// drawn ahead on a second thread gives the same logits and gradients, to
// the bit, as ts.MustDropout at every site, and leaves the global
// generator where the sequential dropouts leave it — for the plain
// network and for BD3-LM's x_t ⊕ x_0 stream through HiddenRows.
func TestDropoutNoiseSameAsDropout(t *testing.T) {
	torchx.Lock()
	const batch, length, vocab = 3, 16, 29
	cfg := testConfig()
	cfg.Dropout = 0.3
	cfg.Lanes = 1 // lanes change the rounding (lanes_test.go)
	for _, c := range []struct {
		name string
		spec Spec
		rows bool // HiddenRows over every other position, x_t ⊕ x_0
	}{
		{"forward", Spec{VocabIn: vocab + 1, VocabOut: vocab}, false},
		{"bd3lm-rows", Spec{VocabIn: vocab + 1, VocabOut: vocab, BlockSize: 4}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			torchx.Lock() // a subtest runs on its own goroutine
			m, vs := newTestModel(t, cfg, c.spec, 1)
			l := length
			if c.rows {
				l = 2 * length
			}
			x := tokenTensor(randomRows(batch, l, vocab, 2))
			defer x.MustDrop()
			rows := ts.MustArange(ts.IntScalar(int64(batch*l/2)), gotch.Int64, gotch.CPU).MustMulScalar(ts.IntScalar(2), true)
			defer rows.MustDrop()
			run := func(inline bool) (out, grads []float64, next float64) {
				m.inlineDropout = inline
				for _, v := range trainable(vs) {
					v.ZeroGrad()
				}
				torchx.Seed(7)
				var y *ts.Tensor
				if c.rows {
					y = m.HiddenRows(x, rows, true)
				} else {
					y = m.Forward(x, nil, true)
				}
				after := ts.MustRand([]int64{1}, gotch.Double, gotch.CPU) // the generator's next draw
				next = after.Float64Values()[0]
				after.MustDrop()
				loss := y.MustSum(gotch.Float, false)
				loss.MustBackward()
				out = y.Float64Values()
				loss.MustDrop()
				y.MustDrop()
				for _, v := range trainable(vs) {
					g := v.MustGrad(false)
					if g.MustDefined() { // HiddenRows leaves the projection out
						grads = append(grads, g.Float64Values()...)
					}
					g.MustDrop()
				}
				return out, grads, next
			}
			wantOut, wantGrads, wantNext := run(true)
			gotOut, gotGrads, gotNext := run(false)
			if d := maxAbsDiff(gotOut, wantOut, 0, len(wantOut)); d != 0 {
				t.Errorf("outputs differ by up to %g, want bit-identical", d)
			}
			if d := maxAbsDiff(gotGrads, wantGrads, 0, len(wantGrads)); d != 0 {
				t.Errorf("gradients differ by up to %g, want bit-identical", d)
			}
			if gotNext != wantNext {
				t.Errorf("the generator's next draw is %v after the pass, %v after sequential dropouts", gotNext, wantNext)
			}
			// Dropout was on: a pass without it differs.
			m.inlineDropout = false
			torchx.Seed(7)
			var y *ts.Tensor
			torchx.NoGrad(func() {
				if c.rows {
					y = m.HiddenRows(x, rows, false)
				} else {
					y = m.Forward(x, nil, false)
				}
			})
			if d := maxAbsDiff(y.Float64Values(), wantOut, 0, len(wantOut)); d < 1e-3 {
				t.Errorf("an eval pass differs from the training pass by %g: dropout had no effect", d)
			}
			y.MustDrop()
		})
	}
}

// trainable is vs's trainable variables in a fixed (name) order: the
// VarStore's own tensors, not the copies vs.Variables() holds, which keep
// nothing alive — with the copies alone, the GC may finalize the
// parameters (and free their C++ handles) while a test still reads them.
func trainable(vs *nn.VarStore) []*ts.Tensor {
	var out []*ts.Tensor
	for _, n := range slices.Sorted(maps.Keys(vs.Variables())) {
		v, err := vs.Root().Get(n)
		if err != nil {
			panic(err)
		}
		out = append(out, v)
	}
	return out
}
