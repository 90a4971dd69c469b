package sampling

import (
	"math"
	"testing"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
)

// toy is a data distribution over sequences of l tokens from a vocabulary
// of v, given as an explicit table, with everything about its forward
// processes computed exactly by enumeration.
type toy struct {
	v, l int
	p    []float64 // p[code(x0)]
	proc string    // absorbing or uniform
}

// toyTable is a correlated distribution over 3 tokens × 2 positions: it is
// far from the product of its marginals, so a sampler that ignores the
// dependence fails the goodness-of-fit tests.
func toyTable(proc string) toy {
	return toy{v: 3, l: 2, proc: proc, p: []float64{
		0.30, 0.02, 0.08,
		0.05, 0.20, 0.05,
		0.10, 0.03, 0.17,
	}}
}

// states is the number of states per position.
func (d toy) states() int {
	if d.proc == "absorbing" {
		return d.v + 1
	}
	return d.v
}

// decode turns a code in base n into l digits.
func decode(code, n, l int) []int {
	x := make([]int, l)
	for j := l - 1; j >= 0; j-- {
		x[j] = code % n
		code /= n
	}
	return x
}

// encode is decode's inverse.
func encode(x []int, n int) int {
	code := 0
	for _, d := range x {
		code = code*n + d
	}
	return code
}

// q is q_σ(xt|x0) for one position.
func (d toy) q(xt, x0 int, sigma float64) float64 {
	a := math.Exp(-sigma)
	if d.proc == "absorbing" {
		switch xt {
		case x0:
			return a
		case d.v:
			return 1 - a
		}
		return 0
	}
	if xt == x0 {
		return a + (1-a)/float64(d.v)
	}
	return (1 - a) / float64(d.v)
}

// step is the one-position transition probability from y at noise σ_s
// to x at σ_t ≥ σ_s.
func (d toy) step(x, y int, sigmaS, sigmaT float64) float64 {
	if d.proc == "absorbing" && y == d.v {
		if x == d.v {
			return 1
		}
		return 0
	}
	return d.q(x, y, sigmaT-sigmaS)
}

// posterior is p(x0|xt) over all clean codes at noise σ.
func (d toy) posterior(xt []int, sigma float64) []float64 {
	post := make([]float64, len(d.p))
	total := 0.0
	for c, pc := range d.p {
		x0 := decode(c, d.v, d.l)
		w := pc
		for j := range xt {
			w *= d.q(xt[j], x0[j], sigma)
		}
		post[c] = w
		total += w
	}
	for c := range post {
		post[c] /= total
	}
	return post
}

// marginals is p(x0^i = v | xt) [l][v].
func (d toy) marginals(xt []int, sigma float64) [][]float64 {
	m := make([][]float64, d.l)
	for i := range m {
		m[i] = make([]float64, d.v)
	}
	for c, pc := range d.posterior(xt, sigma) {
		x0 := decode(c, d.v, d.l)
		for i := range x0 {
			m[i][x0[i]] += pc
		}
	}
	return m
}

// pt is the marginal probability of noisy sequence x at noise σ.
func (d toy) pt(x []int, sigma float64) float64 {
	total := 0.0
	for c, pc := range d.p {
		x0 := decode(c, d.v, d.l)
		w := pc
		for j := range x {
			w *= d.q(x[j], x0[j], sigma)
		}
		total += w
	}
	return total
}

// score is the exact s(x)_y = p_σ(x with x^i = y)/p_σ(x) at position i.
func (d toy) score(x []int, i, y int, sigma float64) float64 {
	z := append([]int(nil), x...)
	z[i] = y
	return d.pt(z, sigma) / d.pt(x, sigma)
}

// reverse is the exact reverse conditional P(x_s^i = y | x_t = x) of one
// position (at any step), from the joint posterior: Σ_x0 p(x0|x) q(y|x^i, x0^i), with
// the one-position posterior q(y|x, x0) = q_s(y|x0)·step(x|y)/q_t(x|x0).
func (d toy) reverse(x []int, i, _ int, sigmaS, sigmaT float64) []float64 {
	out := make([]float64, d.states())
	for c, pc := range d.posterior(x, sigmaT) {
		if pc == 0 {
			continue
		}
		x0 := decode(c, d.v, d.l)[i]
		for y := range out {
			qs := 1.0
			if sigmaS > 0 {
				qs = d.q(y, x0, sigmaS)
			} else if y != x0 {
				qs = 0
			}
			out[y] += pc * qs * d.step(x[i], y, sigmaS, sigmaT) / d.q(x[i], x0, sigmaT)
		}
	}
	return out
}

// chainLaw is the exact distribution of the clean sequences a T-step
// reverse chain ends in, when every position moves independently given
// x_t with move(x, i, step) (a distribution over its next state). The
// chain starts from all masks (absorbing) or uniform noise.
func (d toy) chainLaw(steps int, sched forward.Schedule, move func(x []int, i, step int, sigmaS, sigmaT float64) []float64) []float64 {
	return d.chainLawOn(grid(sched, steps), move)
}

// chainLawOn is chainLaw on the noise levels sigma[0] = 0 < … < sigma[K]:
// K steps, step k from sigma[k] to sigma[k−1].
func (d toy) chainLawOn(sigma []float64, move func(x []int, i, step int, sigmaS, sigmaT float64) []float64) []float64 {
	steps := len(sigma) - 1
	n := d.states()
	size := 1
	for range d.l {
		size *= n
	}
	dist := make([]float64, size)
	if d.proc == "absorbing" {
		all := make([]int, d.l)
		for j := range all {
			all[j] = d.v
		}
		dist[encode(all, n)] = 1
	} else {
		for c := range dist {
			dist[c] = 1 / float64(size)
		}
	}
	for i := steps; i >= 1; i-- {
		next := make([]float64, size)
		for c, pc := range dist {
			if pc == 0 {
				continue
			}
			x := decode(c, n, d.l)
			moves := make([][]float64, d.l)
			for j := range moves {
				moves[j] = move(x, j, i, sigma[i-1], sigma[i])
			}
			for c2 := range next {
				y := decode(c2, n, d.l)
				w := pc
				for j := range y {
					w *= moves[j][y[j]]
				}
				next[c2] += w
			}
		}
		dist = next
	}
	clean := make([]float64, len(d.p))
	for c, pc := range dist {
		if pc == 0 {
			continue
		}
		x := decode(c, n, d.l)
		for _, t := range x {
			if t >= d.v {
				panic("toy chain ended with a mask")
			}
		}
		clean[encode(x, d.v)] += pc
	}
	return clean
}

// toyNet is the exact network for the toy: clean-token logits (log of the
// exact marginals; for the proportional form the marginals divided by
// Q̄_t[v, x_t] as that form's optimum) or SEDD's logits (exact log-scores,
// undoing the absorbing shift).
type toyNet struct {
	d            toy
	out          int // outputs per position
	scores       bool
	proportional bool
	// first is the last reverse step's σ_t (σ(1/T)), where the
	// proportional form's optimum is the plain marginal (D3PM's
	// p_θ(x0|x_1) = p̃); 0 when unknown.
	first float64
}

func newToyNet(d toy, scores, proportional bool) *toyNet {
	n := &toyNet{d: d, out: d.v, scores: scores, proportional: proportional}
	if scores {
		n.out = d.states()
	}
	return n
}

func (n *toyNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	size := x.MustSize()
	b, l, out := int(size[0]), int(size[1]), n.out
	xs := x.Int64Values()
	sig := 0.5 // the absorbing posterior does not depend on σ
	var sigs []float64
	if sigma != nil {
		sigs = sigma.Float64Values()
	}
	// The batch holds few distinct rows: compute each once.
	type key struct {
		code  int
		sigma float64
	}
	memo := map[key][]float32{}
	logits := make([]float32, 0, b*l*out)
	row := make([]int, l)
	for r := range b {
		for j := range row {
			row[j] = int(xs[r*l+j])
		}
		if sigs != nil {
			sig = sigs[r]
		}
		k := key{encode(row, n.d.states()), sig}
		if memo[k] == nil {
			for i := range l {
				for y := range out {
					memo[k] = append(memo[k], float32(n.logit(row, i, y, sig)))
				}
			}
		}
		logits = append(logits, memo[k]...)
	}
	return ts.MustOfSlice(logits).MustView([]int64{int64(b), int64(l), int64(out)}, true)
}

func (n *toyNet) logit(x []int, i, y int, sigma float64) float64 {
	d := n.d
	if n.scores {
		if y >= d.v {
			return 0
		}
		ls := math.Log(d.score(x, i, y, sigma))
		if d.proc == "absorbing" {
			ls += math.Log(math.Expm1(sigma)) + math.Log(float64(d.v))
		}
		return ls
	}
	p := d.marginals(x, sigma)[i][y]
	if n.proportional && math.Abs(sigma-n.first) > 1e-6*n.first {
		p /= d.q(x[i], y, sigma)
	}
	return math.Log(p)
}

// objective builds the named objective over proc with V tokens (nil proc
// for ar); the samplers read the network through it. d3pm is trained in
// the default (proportional) form.
func objective(t testing.TB, name string, proc forward.Process, v int) losses.Objective {
	return objectiveForm(t, name, proc, v, losses.DefaultConfig().D3PMForm)
}

// objectiveForm is objective with d3pm trained in the given form.
func objectiveForm(t testing.TB, name string, proc forward.Process, v int, form string) losses.Objective {
	t.Helper()
	cfg := losses.DefaultConfig()
	cfg.Name, cfg.D3PMForm = name, form
	if name == "d3pm" {
		cfg.Steps = 16
	}
	obj, err := losses.New(cfg, proc, v)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// toyNetFor is the exact toy network with the objective it stands for; a
// d3pm objective is trained in the form the network is optimal for.
func toyNetFor(t testing.TB, d toy, proc forward.Process, name string, proportional bool) Net {
	form := "mixture"
	if proportional {
		form = "proportional"
	}
	return Net{Model: newToyNet(d, name == "sedd", proportional), Objective: objectiveForm(t, name, proc, d.v, form)}
}

// toyProcess is the forward process of the toy with a log-linear schedule.
func toyProcess(d toy) forward.Process {
	sched := forward.LogLinear{Eps: 1e-3}
	if d.proc == "absorbing" {
		return forward.NewAbsorbing(d.v, sched)
	}
	return forward.NewUniform(d.v, sched)
}

// counts tallies sequences by their code.
func counts(rows [][]int, v int) []float64 {
	n := 1
	for range rows[0] {
		n *= v
	}
	c := make([]float64, n)
	for _, r := range rows {
		c[encode(r, v)]++
	}
	return c
}
