package losses

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// build makes an objective from a config edit and returns its method.
func build(t *testing.T, name string, proc forward.Process, v int, edit func(*Config)) method {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	if name == "d3pm" {
		cfg.Steps = 8
	}
	if edit != nil {
		edit(&cfg)
	}
	obj, err := New(cfg, proc, v)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(method)
}

// node is one time at which the bound's integrand is evaluated, with its
// quadrature weight.
type node struct{ t, w float64 }

// gridNodes are the T steps of a discrete-time bound, each counted once.
func gridNodes(steps int) []node {
	out := make([]node, steps)
	for i := range out {
		out[i] = node{t: float64(i+1) / float64(steps), w: 1 / float64(steps)}
	}
	return out
}

// bounds evaluates the objective's bound exactly for each x0: the
// weighted sum over nodes of Σ_{x_t} q(x_t|x0)·Σ_l (bound − prior)_l, by
// enumerating every x_t, and separately the prior term Σ_l prior_l. All
// rows go through the objective's terms in a few large batches.
func bounds(t *testing.T, m method, net Net, ex *toydist.Exact, x0s [][]int64, nodes []node) (sum, prior []float64) {
	t.Helper()
	type row struct {
		x0, xt []int64
		k      int
		t, w   float64
	}
	var rows []row
	for _, nd := range nodes {
		sigma := ex.Proc.Schedule().Sigma(nd.t)
		for k, x0 := range x0s {
			for _, xt := range toydist.Seqs(ex.Proc.NumStates(), ex.D.L) {
				if q := ex.Q(x0, xt, sigma); q > 0 {
					rows = append(rows, row{x0, xt, k, nd.t, nd.w * q})
				}
			}
		}
	}
	out := make([]float64, len(x0s))
	prior = make([]float64, len(x0s))
	l := ex.D.L
	const chunk = 8192
	for lo := 0; lo < len(rows); lo += chunk {
		part := rows[lo:min(lo+chunk, len(rows))]
		var flat0, flatT []int64
		times := make([]float64, len(part))
		for i, r := range part {
			flat0 = append(flat0, r.x0...)
			flatT = append(flatT, r.xt...)
			times[i] = r.t
		}
		shape := []int64{int64(len(part)), int64(l)}
		x0t := ts.MustOfSlice(flat0).MustView(shape, true)
		xtt := ts.MustOfSlice(flatT).MustView(shape, true)
		torchx.NoGrad(func() {
			tr, err := m.terms(net, x0t, xtt, nil, times, false)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.drop()
			b := tr.bound.Float64Values()
			p := tr.prior.Float64Values()
			for i, r := range part {
				row, pr := 0.0, 0.0
				for j := range l {
					row += b[i*l+j] - p[i*l+j]
					pr += p[i*l+j]
				}
				out[r.k] += r.w * row
				prior[r.k] = pr
			}
		})
		x0t.MustDrop()
		xtt.MustDrop()
	}
	return out, prior
}

// exactBounds is bounds over the objective's own nodes: quadrature for
// continuous time, every step for T > 0 (mapped through the objective's
// times, as Loss and NELBO map their draws).
func exactBounds(t *testing.T, m method, steps int, net Net, ex *toydist.Exact, x0s [][]int64) []float64 {
	nodes := quadrature()
	if steps > 0 {
		nodes = gridNodes(steps)
	}
	sum, prior := bounds(t, m, net, ex, x0s, nodes)
	for k := range sum {
		sum[k] += prior[k]
	}
	return sum
}

// wobble is a fixed, irregular perturbation of logits: models that are
// wrong in a reproducible way.
func wobble(x []int64, i, v int) float64 {
	c := 0.0
	for _, s := range x {
		c = c*7 + float64(s)
	}
	return 0.7 * math.Sin(13*c+5*float64(i)+3*float64(v)+1)
}

// denoiser is a table net over clean tokens: exact marginals at the
// network's σ (or at σ = anything when they do not depend on it, as for
// absorbing), optionally divided by Q̄_σ[v, x_t] (the proportional form's
// optimum) and optionally wobbled.
func denoiser(ex *toydist.Exact, proportional, wobbly bool) *toydist.TableNet {
	return denoiserFirst(ex, proportional, wobbly, -1)
}

// denoiserFirst is denoiser, except that at the noise level first (the
// first step's σ, as the network sees it in float32) the proportional
// output is the plain marginal: D3PM's p_θ(x0|x_1) is p̃ itself, so that
// is the proportional form's optimum there.
func denoiserFirst(ex *toydist.Exact, proportional, wobbly bool, first float64) *toydist.TableNet {
	return &toydist.TableNet{Out: ex.D.V, Fn: func(x []int64, sigma float64) [][]float64 {
		if sigma == 0 {
			// A net without time input (mdlm) sees σ = 0; absorbing
			// marginals are the same at every σ > 0.
			sigma = 1
		}
		p := ex.X0Marginals(x, sigma)
		if proportional && math.Abs(sigma-first) > 1e-6*first {
			m := ex.Trans(sigma)
			for i := range p {
				for v := range p[i] {
					if m[v][x[i]] > 0 {
						p[i][v] /= m[v][x[i]]
					} else {
						p[i][v] = 0
					}
				}
			}
		}
		out := toydist.Logs(p)
		if wobbly {
			for i := range out {
				for v := range out[i] {
					out[i][v] += wobble(x, i, v)
				}
			}
		}
		return out
	}}
}

// linearNet is a small random network: token embedding, plus σ times a
// time vector, then a linear read-out. Position l's logits depend on input
// token l only, so it is also a (trivially) causal model for ar.
type linearNet struct {
	emb, tw, out *ts.Tensor
}

func newLinearNet(spec NetSpec, dim int64, scale float64, dtype gotch.DType) *linearNet {
	mk := func(shape []int64) *ts.Tensor {
		return ts.MustRandn(shape, dtype, gotch.CPU).MustMulScalar(ts.FloatScalar(scale), true).MustSetRequiresGrad(true, true)
	}
	return &linearNet{
		emb: mk([]int64{int64(spec.VocabIn), dim}),
		tw:  mk([]int64{dim}),
		out: mk([]int64{dim, int64(spec.VocabOut)}),
	}
}

func (n *linearNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := x.MustSize()
	h := s.T(s.T(n.emb.MustIndexSelect(0, s.T(x.MustFlatten(0, -1, false)), false)).MustView([]int64{size[0], size[1], -1}, false))
	if sigma != nil {
		sg := s.T(s.T(sigma.MustTotype(h.DType(), false)).MustView([]int64{size[0], 1, 1}, false))
		h = s.T(h.MustAdd(s.T(sg.MustMul(n.tw, false)), false))
	}
	return h.MustMatmul(n.out, false)
}

func (n *linearNet) params() []*ts.Tensor { return []*ts.Tensor{n.emb, n.tw, n.out} }

// toyEmbedding is the embedding process over 3 tokens: 0 and 2 are each
// other's farthest, 1 sits between them.
func toyEmbedding(t *testing.T, sched forward.Schedule) *forward.Embedding {
	t.Helper()
	table := ts.MustOfSlice([]float32{1, 0, 0.8, 0.6, 0, 1}).MustView([]int64{3, 2}, true)
	defer table.MustDrop()
	e, err := forward.NewEmbedding(table, 1, sched, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Drop)
	return e
}

// seqTensor is one sequence as [1,L].
func seqTensor(x []int64) *ts.Tensor {
	return ts.MustOfSlice(x).MustView([]int64{1, int64(len(x))}, true)
}

// modelNLL is −log p_θ(x0) for every clean sequence (in code order) under
// the D3PM model's own generative chain: x_T ~ π at every position, then
// x_{i−1} ~ Π_l p_θ(x_{i−1}^l|x_i) from forward.ModelPosterior, i = T..1,
// run exactly over all N^L states.
func modelNLL(t *testing.T, proc forward.Process, net Net, steps int, form string, l int) []float64 {
	t.Helper()
	f := forward.Proportional
	if form == "mixture" {
		f = forward.Mixture
	}
	n := proc.NumStates()
	all := toydist.Seqs(n, l)
	pi := proc.Prior()
	vec := make([]float64, len(all))
	var flat []int64
	for s, x := range all {
		vec[s] = 1
		for _, v := range x {
			vec[s] *= pi[v]
		}
		flat = append(flat, x...)
	}
	xt := ts.MustOfSlice(flat).MustView([]int64{int64(len(all)), int64(l)}, true)
	defer xt.MustDrop()
	sched := proc.Schedule()
	for i := steps; i >= 1; i-- {
		sigT := sched.Sigma(float64(i) / float64(steps))
		sigS := 0.0
		if i > 1 {
			sigS = sched.Sigma(float64(i-1) / float64(steps))
		}
		st, ss := make([]float64, len(all)), make([]float64, len(all))
		for s := range st {
			st[s], ss[s] = sigT, sigS
		}
		var post []float64
		torchx.NoGrad(func() {
			sg := netSigma(st, gotch.CPU)
			logits := net.Forward(xt, sg, false)
			probs := logits.MustSoftmax(-1, logits.DType(), true)
			post = forward.ModelPosterior(proc, probs, xt, ss, st, f).Float64Values(true)
			probs.MustDrop()
			sg.MustDrop()
		})
		next := make([]float64, len(all))
		for s := range all {
			for s2, x2 := range all {
				p := vec[s]
				for pos, v := range x2 {
					p *= post[(s*l+pos)*n+int(v)]
				}
				next[s2] += p
			}
		}
		vec = next
	}
	v := proc.Vocab()
	out := make([]float64, 0)
	for _, x0 := range toydist.Seqs(v, l) {
		out = append(out, -math.Log(vec[toydist.Code(x0, n)]))
	}
	return out
}
