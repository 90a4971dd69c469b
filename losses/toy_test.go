package losses

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
)

// toy is an explicit data distribution over all V^L sequences: the ground
// truth that every bound is checked against.
type toy struct {
	v, l int
	p    []float64 // by sequence code: base-V digits, position 0 first
}

// toy3x2 has V = 3, L = 2 and strongly correlated positions.
var toy3x2 = toy{v: 3, l: 2, p: []float64{
	0.30, 0.05, 0.05,
	0.02, 0.20, 0.08,
	0.10, 0.05, 0.15,
}}

// toy4x3 has V = 4, L = 3 with probabilities ∝ 1 + (code·7 mod 11).
func toy4x3() toy {
	t := toy{v: 4, l: 3, p: make([]float64, 64)}
	sum := 0.0
	for c := range t.p {
		t.p[c] = 1 + float64(c*7%11)
		sum += t.p[c]
	}
	for c := range t.p {
		t.p[c] /= sum
	}
	return t
}

func (d toy) entropy() float64 {
	h := 0.0
	for _, p := range d.p {
		h -= p * math.Log(p)
	}
	return h
}

// seqs enumerates all n^l sequences over n symbols, in code order.
func seqs(n, l int) [][]int64 {
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

func code(s []int64, n int) int {
	c := 0
	for _, x := range s {
		c = c*n + int(x)
	}
	return c
}

// exact computes the true posterior quantities of a toy under a process,
// from the process's per-position transition matrix exp(σR) (forward's
// tests pin it to a dense matrix exponential).
type exact struct {
	d     toy
	proc  forward.Process
	cache map[float64][][]float64
}

func newExact(d toy, proc forward.Process) *exact {
	return &exact{d: d, proc: proc, cache: map[float64][][]float64{}}
}

// trans is exp(σR) as an N×N Go matrix.
func (e *exact) trans(sigma float64) [][]float64 {
	if m, ok := e.cache[sigma]; ok {
		return m
	}
	n := e.proc.NumStates()
	x := ts.MustArange(ts.IntScalar(int64(n)), gotch.Int64, gotch.CPU).MustView([]int64{1, int64(n)}, true)
	defer x.MustDrop()
	row := e.proc.Row(x, []float64{sigma}, gotch.Double)
	vals := row.Float64Values(true)
	m := make([][]float64, n)
	for i := range m {
		m[i] = vals[i*n : (i+1)*n]
	}
	e.cache[sigma] = m
	return m
}

// q is q_σ(x_t|x0) for whole sequences.
func (e *exact) q(x0, xt []int64, sigma float64) float64 {
	m := e.trans(sigma)
	p := 1.0
	for i := range x0 {
		p *= m[x0[i]][xt[i]]
	}
	return p
}

// pt is the marginal p_σ(x_t) = Σ_x0 p(x0)·q_σ(x_t|x0).
func (e *exact) pt(xt []int64, sigma float64) float64 {
	sum := 0.0
	for c, x0 := range seqs(e.d.v, e.d.l) {
		sum += e.d.p[c] * e.q(x0, xt, sigma)
	}
	return sum
}

// x0Marginals is p(x0^i = v | x_t) for every position: [L][V].
func (e *exact) x0Marginals(xt []int64, sigma float64) [][]float64 {
	out := make([][]float64, e.d.l)
	for i := range out {
		out[i] = make([]float64, e.d.v)
	}
	total := 0.0
	for c, x0 := range seqs(e.d.v, e.d.l) {
		w := e.d.p[c] * e.q(x0, xt, sigma)
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

// scores is the true ratio p_σ(x_t with position i set to y)/p_σ(x_t):
// [L][N].
func (e *exact) scores(xt []int64, sigma float64) [][]float64 {
	base := e.pt(xt, sigma)
	out := make([][]float64, e.d.l)
	for i := range out {
		out[i] = make([]float64, e.proc.NumStates())
		for y := range out[i] {
			alt := append([]int64(nil), xt...)
			alt[i] = int64(y)
			out[i][y] = e.pt(alt, sigma) / base
		}
	}
	return out
}

// tableNet is a network given by a Go function of one sequence and its
// noise level: the exact denoisers and score models of the toys.
type tableNet struct {
	out  int
	fn   func(x []int64, sigma float64) [][]float64 // [L][out] logits
	memo map[string][][]float64
}

func (n *tableNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	size := x.MustSize()
	b, l := int(size[0]), int(size[1])
	xs := x.Int64Values()
	var sg []float64
	if sigma != nil {
		sg = sigma.Float64Values()
	}
	vals := make([]float64, 0, b*l*n.out)
	for r := range b {
		s := 0.0
		if sg != nil {
			s = sg[r]
		}
		key := fmt.Sprint(xs[r*l:(r+1)*l], s)
		rows, ok := n.memo[key]
		if !ok {
			rows = n.fn(xs[r*l:(r+1)*l], s)
			if n.memo == nil {
				n.memo = map[string][][]float64{}
			}
			n.memo[key] = rows
		}
		for _, row := range rows {
			vals = append(vals, row...)
		}
	}
	return ts.MustOfSlice(vals).MustView([]int64{int64(b), int64(l), int64(n.out)}, true)
}

func logs(p [][]float64) [][]float64 {
	out := make([][]float64, len(p))
	for i := range p {
		out[i] = make([]float64, len(p[i]))
		for j, v := range p[i] {
			out[i][j] = math.Log(max(v, 1e-300))
		}
	}
	return out
}

// gaussLegendre are the 10-point Gauss–Legendre nodes and weights on
// [−1, 1], found by Newton's method on P_10.
func gaussLegendre() (x, w []float64) {
	const n = 10
	for i := 1; i <= n; i++ {
		z := math.Cos(math.Pi * (float64(i) - 0.25) / (n + 0.5))
		var dp float64
		for range 100 {
			p0, p1 := 1.0, z
			for k := 2; k <= n; k++ {
				p0, p1 = p1, ((2*float64(k)-1)*z*p1-(float64(k)-1)*p0)/float64(k)
			}
			dp = n * (z*p1 - p0) / (z*z - 1)
			dz := p1 / dp
			z -= dz
			if math.Abs(dz) < 1e-16 {
				break
			}
		}
		x = append(x, z)
		w = append(w, 2/((1-z*z)*dp*dp))
	}
	return x, w
}

// panels are the quadrature panels on [0,1]: they crowd geometrically
// towards t = 0, where the uniform process's score entropy has an
// integrable log(1/t) singularity, and towards t = 1, where σ'(t) of the
// log-linear schedule peaks.
func panels() []float64 {
	edges := []float64{0}
	for k := 9; k >= 2; k-- {
		edges = append(edges, math.Pow(10, -float64(k)))
	}
	edges = append(edges, 0.05, 0.25, 0.5, 0.75, 0.9)
	for k := 2; k <= 9; k++ {
		edges = append(edges, 1-math.Pow(10, -float64(k)))
	}
	return append(edges, 1)
}

// quadrature is 10-point Gauss–Legendre on each panel: nodes and
// weights for ∫₀¹ f(t) dt.
func quadrature() []node {
	x, w := gaussLegendre()
	edges := panels()
	var out []node
	for p := 1; p < len(edges); p++ {
		a, b := edges[p-1], edges[p]
		for i := range x {
			out = append(out, node{t: a + (b-a)*(x[i]+1)/2, w: w[i] * (b - a) / 2})
		}
	}
	return out
}
