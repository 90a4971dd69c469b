package eval

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"math"
	"slices"
	"testing"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// probsNet turns a function giving per-position probabilities into a net.
func probsNet(v int, fn func(x []int64) [][]float64) *toydist.TableNet {
	return &toydist.TableNet{Out: v, Fn: func(x []int64, _ float64) [][]float64 {
		p := fn(x)
		for i := range p {
			for j := range p[i] {
				p[i][j] = math.Log(p[i][j])
			}
		}
		return p
	}}
}

// peaked is a distribution over v tokens with mass q on token tok.
func peaked(v, tok int, q float64) []float64 {
	out := make([]float64, v)
	for i := range out {
		out[i] = (1 - q) / float64(v-1)
	}
	out[tok] = q
	return out
}

// The fill order decides the answer: diffusion fills the most confident
// position first and conditions the rest on it; ar continues left to
// right, each token conditioned on the ones it chose before.
func TestFillOrder(t *testing.T) {
	torchx.Lock()
	const v = 4
	absorbing := forward.NewAbsorbing(v, forward.LogLinear{Eps: 1e-3})
	// Position 2 is sure of token 2 (0.9); position 1 leans to 1 (0.6)
	// while position 2 is masked, and is sure of 3 (0.95) once it is 2.
	confident := probsNet(v, func(x []int64) [][]float64 {
		p := [][]float64{peaked(v, 0, 0.25), peaked(v, 1, 0.6), peaked(v, 2, 0.9), peaked(v, 3, 0.25)}
		if x[2] == 2 {
			p[1] = peaked(v, 3, 0.95)
		}
		return p
	})
	// Next token = previous token + 1 (mod V), with certainty 0.97.
	counter := probsNet(v, func(in []int64) [][]float64 {
		p := make([][]float64, len(in))
		for i, prev := range in {
			p[i] = peaked(v, int(prev+1)%v, 0.97)
		}
		return p
	})
	cases := []struct {
		name string
		m    Model
		row  span
		want []int
	}{
		{"mdlm/most-confident-first", Model{Net: confident, Objective: objective(t, "mdlm", absorbing, v, nil), Process: absorbing, SeqLen: 4},
			span{ids: []int{0, 0, 0, 3}, start: 1, k: 2}, []int{0, 3, 2, 3}},
		{"ar/left-to-right", Model{Net: counter, Objective: objective(t, "ar", nil, v, nil), SeqLen: 4},
			span{ids: []int{2, 0, 0, 0}, start: 1, k: 3}, []int{2, 3, 0, 1}},
	}
	for _, c := range cases {
		got, err := fillSpans(c.m, []span{c.row, c.row})
		if err != nil {
			t.Fatal(err)
		}
		for r := range got {
			if !slices.Equal(got[r], c.want) {
				t.Errorf("%s: row %d filled %v, want %v", c.name, r, got[r], c.want)
			}
		}
	}
}

// TestFillTimeMatchesMaskFraction: filling a span of 2 in 4 positions, a
// time-conditioned network is told σ = −log(1 − 2/4), then −log(1 − 1/4):
// the mask fractions it sees, not σ(u/k) = σ(1), σ(1/2) of a chain over
// the span alone.
func TestFillTimeMatchesMaskFraction(t *testing.T) {
	torchx.Lock()
	proc := forward.NewAbsorbing(3, forward.LogLinear{Eps: 1e-3})
	var seen []float64
	net := toydist.SigmaRecorder(3, &seen)
	m := Model{Net: net, Objective: objective(t, "d3pm", proc, 3, func(c *losses.Config) { c.Steps = 16 }), Process: proc, SeqLen: 4}
	if _, err := fillSpans(m, []span{{ids: []int{0, 1, 2, 0}, start: 1, k: 2}}); err != nil {
		t.Fatal(err)
	}
	want := []float64{-math.Log(0.5), -math.Log(0.75)}
	if len(seen) != 2 || math.Abs(seen[0]-want[0]) > 1e-6 || math.Abs(seen[1]-want[1]) > 1e-6 {
		t.Errorf("σ seen %v, want %v", seen, want)
	}
}
