// Package toydist holds data distributions small enough to enumerate (all
// V^L sequences), what a forward process does to them computed exactly
// (posteriors, clean-token marginals, score ratios), and a network given by
// a Go function: the ground truth that the tests of losses and eval check
// bounds and estimators against. It is for tests only.
package toydist

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
)

// Dist is an explicit distribution over sequences of L tokens from V.
type Dist struct {
	V, L int
	P    []float64 // by sequence code: base-V digits, position 0 first
}

// Dist3x2 has V = 3, L = 2 and strongly correlated positions.
func Dist3x2() Dist {
	return Dist{V: 3, L: 2, P: []float64{
		0.30, 0.05, 0.05,
		0.02, 0.20, 0.08,
		0.10, 0.05, 0.15,
	}}
}

// Dist4x3 has V = 4, L = 3 with probabilities ∝ 1 + (code·7 mod 11).
func Dist4x3() Dist {
	d := Dist{V: 4, L: 3, P: make([]float64, 64)}
	sum := 0.0
	for c := range d.P {
		d.P[c] = 1 + float64(c*7%11)
		sum += d.P[c]
	}
	for c := range d.P {
		d.P[c] /= sum
	}
	return d
}

// Entropy is H(p) in nats per sequence: the NLL a perfect model reaches.
func (d Dist) Entropy() float64 {
	h := 0.0
	for _, p := range d.P {
		h -= p * math.Log(p)
	}
	return h
}

// Seqs enumerates all n^l sequences over n symbols, in code order.
func Seqs(n, l int) [][]int64 {
	total := int(math.Pow(float64(n), float64(l)))
	out := make([][]int64, total)
	for c := range out {
		s := make([]int64, l)
		r := c
		for i := l - 1; i >= 0; i-- {
			s[i] = int64(r % n)
			r /= n
		}
		out[c] = s
	}
	return out
}

// Code is a sequence's index in Seqs(n, len(s)).
func Code(s []int64, n int) int {
	c := 0
	for _, x := range s {
		c = c*n + int(x)
	}
	return c
}

// Dataset is n sequences in proportions as close to P as n allows
// (sequence i sits at the (i+½)/n quantile), in a fixed shuffled order, and
// their true NLL in nats per token.
func (d Dist) Dataset(n int) ([][]int64, float64) {
	all := Seqs(d.V, d.L)
	out := make([][]int64, n)
	nll := 0.0
	for i := range out {
		q, c := (float64(i)+0.5)/float64(n), 0
		for cum := d.P[0]; cum < q; cum += d.P[c] {
			c++
		}
		out[(i*7919)%n] = all[c] // 7919 is prime to the sizes used: a permutation
		nll -= math.Log(d.P[c])
	}
	return out, nll / float64(n*d.L)
}

// Exact computes the true posterior quantities of a Dist under a process,
// from the process's per-position transition matrix exp(σR) (forward's
// tests pin it to a dense matrix exponential).
type Exact struct {
	D     Dist
	Proc  forward.Process
	cache map[float64][][]float64
}

// NewExact pairs a distribution with a process.
func NewExact(d Dist, proc forward.Process) *Exact {
	return &Exact{D: d, Proc: proc, cache: map[float64][][]float64{}}
}

// Trans is exp(σR) as an N×N Go matrix.
func (e *Exact) Trans(sigma float64) [][]float64 {
	if m, ok := e.cache[sigma]; ok {
		return m
	}
	n := e.Proc.NumStates()
	x := ts.MustArange(ts.IntScalar(int64(n)), gotch.Int64, gotch.CPU).MustView([]int64{1, int64(n)}, true)
	defer x.MustDrop()
	vals := e.Proc.Row(x, []float64{sigma}, gotch.Double).Float64Values(true)
	m := make([][]float64, n)
	for i := range m {
		m[i] = vals[i*n : (i+1)*n]
	}
	e.cache[sigma] = m
	return m
}

// Q is q_σ(x_t|x0) for whole sequences.
func (e *Exact) Q(x0, xt []int64, sigma float64) float64 {
	m := e.Trans(sigma)
	p := 1.0
	for i := range x0 {
		p *= m[x0[i]][xt[i]]
	}
	return p
}

// Pt is the marginal p_σ(x_t) = Σ_x0 p(x0)·q_σ(x_t|x0).
func (e *Exact) Pt(xt []int64, sigma float64) float64 {
	sum := 0.0
	for c, x0 := range Seqs(e.D.V, e.D.L) {
		sum += e.D.P[c] * e.Q(x0, xt, sigma)
	}
	return sum
}

// X0Marginals is p(x0^i = v | x_t) for every position: [L][V].
func (e *Exact) X0Marginals(xt []int64, sigma float64) [][]float64 {
	out := make([][]float64, e.D.L)
	for i := range out {
		out[i] = make([]float64, e.D.V)
	}
	total := 0.0
	for c, x0 := range Seqs(e.D.V, e.D.L) {
		w := e.D.P[c] * e.Q(x0, xt, sigma)
		total += w
		for i := range x0 {
			out[i][x0[i]] += w
		}
	}
	for i := range out {
		for v := range out[i] {
			out[i][v] /= total
		}
	}
	return out
}

// Scores is the true ratio p_σ(x_t with position i set to y)/p_σ(x_t):
// [L][N].
func (e *Exact) Scores(xt []int64, sigma float64) [][]float64 {
	base := e.Pt(xt, sigma)
	out := make([][]float64, e.D.L)
	for i := range out {
		out[i] = make([]float64, e.Proc.NumStates())
		for y := range out[i] {
			alt := append([]int64(nil), xt...)
			alt[i] = int64(y)
			out[i][y] = e.Pt(alt, sigma) / base
		}
	}
	return out
}

// TableNet is a network given by a Go function of one sequence and its
// noise level, returning [L][Out] logits: the exact denoisers and score
// models of the toys. Results are memoised per (sequence, σ).
type TableNet struct {
	Out  int
	Fn   func(x []int64, sigma float64) [][]float64
	memo map[string][][]float64
}

// Forward implements the networks' interface of losses and eval.
func (n *TableNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	size := x.MustSize()
	b, l := int(size[0]), int(size[1])
	xs := x.Int64Values()
	var sg []float64
	if sigma != nil {
		sg = sigma.Float64Values()
	}
	vals := make([]float64, 0, b*l*n.Out)
	for r := range b {
		s := 0.0
		if sg != nil {
			s = sg[r]
		}
		key := fmt.Sprint(xs[r*l:(r+1)*l], s)
		rows, ok := n.memo[key]
		if !ok {
			rows = n.Fn(xs[r*l:(r+1)*l], s)
			if n.memo == nil {
				n.memo = map[string][][]float64{}
			}
			n.memo[key] = rows
		}
		for _, row := range rows {
			vals = append(vals, row...)
		}
	}
	return ts.MustOfSlice(vals).MustView([]int64{int64(b), int64(l), int64(n.Out)}, true)
}

// Logs is the elementwise log of probabilities (floored at 1e-300).
func Logs(p [][]float64) [][]float64 {
	out := make([][]float64, len(p))
	for i := range p {
		out[i] = make([]float64, len(p[i]))
		for j, v := range p[i] {
			out[i][j] = math.Log(max(v, 1e-300))
		}
	}
	return out
}

// SigmaRecorder is a network of out fixed, distinct logits at every
// position that appends the noise level of each call it computes to seen:
// what a test needs to check the time input a sampler gives. (TableNet
// memoises inputs, so a repeated input is not recorded twice.)
func SigmaRecorder(out int, seen *[]float64) *TableNet {
	return &TableNet{Out: out, Fn: func(x []int64, sigma float64) [][]float64 {
		*seen = append(*seen, sigma)
		rows := make([][]float64, len(x))
		for i := range rows {
			rows[i] = make([]float64, out)
			for v := range rows[i] {
				rows[i][v] = 0.5 * float64(v)
			}
		}
		return rows
	}}
}
