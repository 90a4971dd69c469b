package models

import (
	"math"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestInitialLoss: with normal(0, 0.02) weights the logits at init are
// nearly flat, so the cross-entropy of any target is ≈ ln V. (gotch's
// default initialisers give ~60 at V = 8192.)
func TestInitialLoss(t *testing.T) {
	torchx.Lock()
	const v = 8192
	for _, spec := range []Spec{
		{VocabIn: v, VocabOut: v},
		{VocabIn: v, VocabOut: v, Causal: true},
		{VocabIn: v + 1, VocabOut: v, TimeCond: true},
	} {
		m, _ := newTestModel(t, testConfig(), spec, 8)
		x := tokenTensor(randomRows(4, 32, v, 8))
		var sigma *ts.Tensor
		if spec.TimeCond {
			sigma = sigmaTensor(0.1, 1, 3, 6)
		}
		var loss float64
		torchx.NoGrad(func() {
			logits := m.Forward(x, sigma, false)
			ce := crossEntropy(logits, x)
			loss = ce.Float64Values()[0]
			ce.MustDrop()
			logits.MustDrop()
		})
		if want := math.Log(v); math.Abs(loss-want) > 0.1 {
			t.Errorf("%+v: first-step cross-entropy %.4f, want ln %d = %.4f ± 0.1", spec, loss, v, want)
		}
	}
}

// TestOverfit trains the tiny preset on one fixed batch of 4 × 16 tokens
// (V = 50) with Adam until the cross-entropy is below 0.1, in two settings:
// next-token prediction with the causal model, and reconstruction of
// masked positions with the bidirectional, time-conditioned one (the
// adaLN gates start at 0, so this also checks that they learn to open).
func TestOverfit(t *testing.T) {
	torchx.Lock()
	const b, l, v, steps = 4, 16, 50, 300
	rows := randomRows(b, l, v, 9)
	for i := range rows {
		rows[i][0] = int64(7 * i) // distinct first tokens: every next token is determined by its prefix
	}
	cases := []struct {
		name        string
		spec        Spec
		input, want [][]int64
	}{
		{"causal next token", Spec{VocabIn: v, VocabOut: v, Causal: true}, prefix(rows), suffix(rows)},
		{"masked reconstruction", Spec{VocabIn: v + 1, VocabOut: v, TimeCond: true}, masked(rows, v), rows},
	}
	for _, c := range cases {
		m, vs := newTestModel(t, testConfig(), c.spec, 10)
		opt, err := nn.DefaultAdamConfig().Build(vs, 3e-3)
		if err != nil {
			t.Fatal(err)
		}
		x, target := tokenTensor(c.input), tokenTensor(c.want)
		var sigma *ts.Tensor
		if c.spec.TimeCond {
			sigma = sigmaTensor(1, 1, 1, 1)
		}
		first, loss, step := 0.0, math.Inf(1), 0
		for ; step < steps && loss >= 0.1; step++ {
			logits := m.Forward(x, sigma, true)
			ce := crossEntropy(logits, target)
			opt.MustZeroGrad()
			ce.MustBackward()
			opt.MustStep()
			loss = ce.Float64Values()[0]
			if step == 0 {
				first = loss
			}
			ce.MustDrop()
			logits.MustDrop()
		}
		if loss >= 0.1 {
			t.Errorf("%s: cross-entropy %.4f after %d steps (first %.4f), want < 0.1", c.name, loss, steps, first)
		}
		t.Logf("%s: cross-entropy %.4f → %.4f in %d steps", c.name, first, loss, step)
	}
}

// prefix drops the last token of each row; suffix drops the first.
func prefix(rows [][]int64) [][]int64 {
	out := make([][]int64, len(rows))
	for i, r := range rows {
		out[i] = r[:len(r)-1]
	}
	return out
}

func suffix(rows [][]int64) [][]int64 {
	out := make([][]int64, len(rows))
	for i, r := range rows {
		out[i] = r[1:]
	}
	return out
}

// masked replaces every third token (a different third in each row) by the
// mask id.
func masked(rows [][]int64, mask int64) [][]int64 {
	out := make([][]int64, len(rows))
	for i, r := range rows {
		out[i] = append([]int64(nil), r...)
		for j := i % 3; j < len(r); j += 3 {
			out[i][j] = mask
		}
	}
	return out
}
