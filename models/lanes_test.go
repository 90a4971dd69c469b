package models

import (
	"math"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestLanesSameLossAndGradients: a training pass on lanes gives the
// outputs, loss and gradients of the same pass on one thread up to
// rounding, for every kind of network and an uneven split of the batch;
// it leaves the generator where the one-thread pass does (the dropout
// masks are the batch's), and repeats to the bit.
func TestLanesSameLossAndGradients(t *testing.T) {
	torchx.Lock()
	const batch, length, vocab = 5, 16, 29
	for _, c := range []struct {
		name  string
		spec  Spec
		lanes int
		input string // forward, rows (HiddenRows), embeds (ForwardEmbeds)
	}{
		{"bidirectional", Spec{VocabIn: vocab + 1, VocabOut: vocab}, 2, "forward"},
		{"time-conditioned", Spec{VocabIn: vocab + 1, VocabOut: vocab, TimeCond: true}, 3, "forward"},
		{"causal", Spec{VocabIn: vocab + 1, VocabOut: vocab, Causal: true}, 2, "forward"},
		{"bd3lm-rows", Spec{VocabIn: vocab + 1, VocabOut: vocab, BlockSize: 4}, 2, "rows"},
		{"embed-and-diffuse", Spec{VocabIn: vocab, VocabOut: 8, TimeCond: true, EmbedDim: 8}, 5, "embeds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			torchx.Lock() // a subtest runs on its own goroutine
			cfg := testConfig()
			cfg.Dropout = 0.3
			m, vs := newTestModel(t, cfg, c.spec, 1)
			for _, v := range trainable(vs) { // the time layers start at zero: give them a gradient to check
				perturb(v, 0.05)
			}
			l := length
			if c.input == "rows" {
				l = 2 * length
			}
			x := tokenTensor(randomRows(batch, l, vocab, 2))
			defer x.MustDrop()
			rows := ts.MustArange(ts.IntScalar(int64(batch*l/2)), gotch.Int64, gotch.CPU).MustMulScalar(ts.IntScalar(2), true)
			defer rows.MustDrop()
			z := ts.MustRandn([]int64{batch, length, 8}, gotch.Float, gotch.CPU)
			defer z.MustDrop()
			var sigma *ts.Tensor
			if c.spec.TimeCond {
				sigma = sigmaTensor(0.1, 0.5, 1, 2, 4)
				defer sigma.MustDrop()
			}
			run := func(lanes int) (out, grads []float64, loss, next float64) {
				m.cfg.Lanes = lanes
				for _, v := range trainable(vs) {
					v.ZeroGrad()
				}
				torchx.Seed(7)
				var y *ts.Tensor
				switch c.input {
				case "rows":
					y = m.HiddenRows(x, rows, true)
				case "embeds":
					y = m.ForwardEmbeds(z, sigma, true)
				default:
					y = m.Forward(x, sigma, true)
				}
				if got := 0; m.pending != nil {
					got = len(m.pending.outs)
					if lanes > 1 && got != lanes {
						t.Fatalf("the pass ran on %d lanes, want %d", got, lanes)
					}
				} else if lanes > 1 {
					t.Fatalf("the pass ran on one thread, want %d lanes", lanes)
				}
				after := ts.MustRand([]int64{1}, gotch.Double, gotch.CPU)
				next = after.Float64Values()[0]
				after.MustDrop()
				// A loss that weighs every output differently.
				w := ts.MustArange(ts.IntScalar(int64(y.Numel())), gotch.Float, gotch.CPU).MustView(y.MustSize(), true).MustSin(true)
				sq := y.MustMul(y, false)
				lt := sq.MustMul(w, true).MustMean(gotch.Float, true)
				w.MustDrop()
				lt.MustBackward()
				if err := m.FinishBackward(); err != nil {
					t.Fatal(err)
				}
				loss = lt.Float64Values()[0]
				out = y.Float64Values()
				lt.MustDrop()
				y.MustDrop()
				for _, v := range trainable(vs) {
					g := v.MustGrad(false)
					if g.MustDefined() {
						grads = append(grads, g.Float64Values()...)
					}
					g.MustDrop()
				}
				return out, grads, loss, next
			}
			wantOut, wantGrads, wantLoss, wantNext := run(1)
			gotOut, gotGrads, gotLoss, gotNext := run(c.lanes)
			if len(gotGrads) != len(wantGrads) {
				t.Fatalf("%d gradient entries on lanes, %d on one thread", len(gotGrads), len(wantGrads))
			}
			if d := maxAbsDiff(gotOut, wantOut, 0, len(wantOut)); d > 1e-5*maxAbs(wantOut) {
				t.Errorf("outputs differ by up to %g (max |y| %g)", d, maxAbs(wantOut))
			}
			// The loss is a signed mean that cancels: the scale of its
			// terms is the mean of y².
			if d := math.Abs(gotLoss - wantLoss); d > 1e-6*meanSquare(wantOut) {
				t.Errorf("loss %v on lanes, %v on one thread (terms of size %g)", gotLoss, wantLoss, meanSquare(wantOut))
			}
			if d := maxAbsDiff(gotGrads, wantGrads, 0, len(wantGrads)); d > 1e-5*maxAbs(wantGrads) {
				t.Errorf("gradients differ by up to %g (max |g| %g)", d, maxAbs(wantGrads))
			}
			if gotNext != wantNext {
				t.Errorf("the generator's next draw is %v after the lanes, %v after one thread", gotNext, wantNext)
			}
			againOut, againGrads, _, _ := run(c.lanes)
			if maxAbsDiff(againOut, gotOut, 0, len(gotOut)) != 0 || maxAbsDiff(againGrads, gotGrads, 0, len(gotGrads)) != 0 {
				t.Errorf("a second pass on lanes differs from the first: want bit-identical")
			}
		})
	}
}

// TestLanesWithoutFinishBackward: backpropagating a lane pass and starting
// the next without FinishBackward would train the blocks on nothing; it
// panics saying so. A lane pass that was never backpropagated is simply
// replaced.
func TestLanesWithoutFinishBackward(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.Lanes = 2
	m, _ := newTestModel(t, cfg, Spec{VocabIn: 9, VocabOut: 8}, 1)
	x := tokenTensor(randomRows(2, 8, 8, 1))
	defer x.MustDrop()
	m.Forward(x, nil, true).MustDrop() // never used: replaced below
	y := m.Forward(x, nil, true)
	y.MustSum(gotch.Float, true).MustBackward()
	defer func() {
		r := recover()
		if s, _ := r.(string); !strings.Contains(s, "without FinishBackward") {
			t.Fatalf("recovered %v, want the FinishBackward panic", r)
		}
	}()
	m.Forward(x, nil, true)
}

func meanSquare(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return s / float64(len(v))
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// TestLanesLeaveInputsWithGradients: an embed-and-diffuse pass whose noisy
// input carries gradients (to the embedding table) runs on one thread;
// with a plain input it runs on lanes.
func TestLanesLeaveInputsWithGradients(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.Lanes = 2
	m, _ := newTestModel(t, cfg, Spec{VocabIn: 9, VocabOut: 8, TimeCond: true, EmbedDim: 8}, 1)
	sigma := sigmaTensor(0.5, 1)
	defer sigma.MustDrop()
	for _, grad := range []bool{false, true} {
		z := ts.MustRandn([]int64{2, 8, 8}, gotch.Float, gotch.CPU)
		if grad {
			torchx.Inplace(z, func() { z.MustRequiresGrad_(true) })
		}
		m.ForwardEmbeds(z, sigma, true).MustDrop()
		if onLanes := m.pending != nil; onLanes == grad {
			t.Errorf("input with gradients %v: ran on lanes %v", grad, onLanes)
		}
		m.dropPending()
		z.MustDrop()
	}
}
