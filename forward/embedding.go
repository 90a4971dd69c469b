package forward

import (
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// MaxCPUVocab is the largest vocabulary the embedding process accepts on a
// CPU: its dense V×V float64 eigendecomposition costs O(V³) time (about two
// minutes at V = 8192 on two cores, eight times that at 16384).
const MaxCPUVocab = 16384

// Embedding is D3PM's nearest-neighbour process over a frozen embedding
// table: tokens diffuse along the symmetric kNN graph A (see graph) with
// rate matrix R = A − diag(A·1). R is symmetric with rows summing to 0, so
// the stationary distribution, and the prior, is uniform.
//
// Marginals go through one eigendecomposition R = U·diag(λ)·Uᵀ:
// q_σ(y|x0) = Σ_k U[y,k]·e^{σλ_k}·U[x0,k]; an entry costs O(V), a row
// O(V²). Entries are accurate to about 1e-15 absolute (float64); rounding
// can make a true 0 slightly negative, so rows are clipped at 0. x_t is
// drawn by uniformization, without any row: Poisson(σ) jumps (the largest
// exit rate is 1), each to neighbour y with probability A[x,y], else stay.
type Embedding struct {
	v            int
	sched        Schedule
	lam, u       *ts.Tensor // float64 [V], [V,V]
	nbr, wt, cdf *ts.Tensor // [V,D] neighbour ids, A[x,y], running sums of A[x,·]
	priorKL      *ts.Tensor // float64 [V]
}

// NewEmbedding builds the process for table [V,D] with k neighbours. The
// eigendecomposition and the prior-KL table are cached in cacheDir, keyed
// by the sha256 of the table and k (and σ(1) for the prior).
func NewEmbedding(table *ts.Tensor, k int, sched Schedule, cacheDir string, device gotch.Device) (*Embedding, error) {
	v := int(table.MustSize()[0])
	if k < 1 || k >= v {
		return nil, fmt.Errorf("process.knn_k: %d must be in 1..V-1 for V=%d", k, v)
	}
	if v > MaxCPUVocab && !device.IsCuda() {
		return nil, fmt.Errorf("process.name: embedding with V=%d needs a CUDA device: its dense V×V eigendecomposition takes %.0f GB and O(V³) time; on a CPU keep V ≤ %d (data.vocab_size)", v, 2*8*float64(v)*float64(v)/1e9, MaxCPUVocab)
	}
	g := knnGraph(table, k, device)
	e := &Embedding{v: v, sched: sched}
	e.nbr, e.wt, e.cdf = g.padded(device)
	key := tableKey(table, k)
	meta := map[string]string{"table_sha256": key, "graph_sha256": g.hash(), "knn_k": strconv.Itoa(k)}
	slog.Info("embedding process graph", "V", v, "k", k, "max_degree", g.degree())
	eig, err := cached(filepath.Join(cacheDir, "eigen-"+key[:16]+".safetensors"), meta, []string{"lambda", "u"}, device,
		func() []*ts.Tensor {
			lam, u := eigenRates(e.nbr, e.wt)
			return []*ts.Tensor{lam, u}
		})
	if err != nil {
		e.Drop()
		return nil, err
	}
	e.lam, e.u = eig[0], eig[1]
	sigma1 := sched.Sigma(1)
	meta["sigma1"] = strconv.FormatFloat(sigma1, 'g', -1, 64)
	kl, err := cached(filepath.Join(cacheDir, fmt.Sprintf("priorkl-%s-%x.safetensors", key[:16], math.Float64bits(sigma1))), meta, []string{"kl"}, device,
		func() []*ts.Tensor { return []*ts.Tensor{priorKLTable(e.lam, e.u, sigma1)} })
	if err != nil {
		e.Drop()
		return nil, err
	}
	e.priorKL = kl[0]
	return e, nil
}

// Drop frees the process's tensors.
func (e *Embedding) Drop() {
	for _, t := range []*ts.Tensor{e.lam, e.u, e.nbr, e.wt, e.cdf, e.priorKL} {
		if t != nil {
			t.MustDrop()
		}
	}
}

func (e *Embedding) Name() string       { return "embedding" }
func (e *Embedding) Vocab() int         { return e.v }
func (e *Embedding) NumStates() int     { return e.v }
func (e *Embedding) Schedule() Schedule { return e.sched }

// Sample draws x_t by uniformization.
func (e *Embedding) Sample(x0 *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size, dev := x0.MustSize(), x0.MustDevice()
	rate := s.T(s.T(perRow(sigma, size[0], gotch.Double, dev)).MustSqueezeDim(-1, false))
	rate = s.T(rate.MustExpand(size, false, false).MustContiguous(true))
	jumps := s.T(rate.MustPoisson(false))
	n := int(float64s(s.T(jumps.MustMax(false)))[0])
	d := e.nbr.MustSize()[1]
	cur := x0.MustAddScalar(ts.IntScalar(0), false) // a fresh tensor, never an alias of x0
	for j := range n {
		js := torchx.NewScope()
		u := js.T(js.T(ts.MustRand(size, gotch.Double, dev)).MustUnsqueeze(-1, false))
		cdf := js.T(js.T(e.cdf.MustIndexSelect(0, js.T(cur.MustFlatten(0, -1, false)), false)).MustView(append(size, d), false))
		pick := js.T(js.T(cdf.MustLeTensor(u, false)).MustSumDimIntlist([]int64{-1}, false, gotch.Int64, false))
		nbr := js.T(js.T(e.nbr.MustIndexSelect(0, js.T(cur.MustFlatten(0, -1, false)), false)).MustView(append(size, d), false))
		cand := js.T(js.T(nbr.MustGather(-1, js.T(js.T(pick.MustClampMax(ts.IntScalar(d-1), false)).MustUnsqueeze(-1, false)), false, false)).MustSqueezeDim(-1, false))
		move := js.T(js.T(pick.MustLt(ts.IntScalar(d), false)).MustLogicalAnd(js.T(jumps.MustGt(ts.FloatScalar(float64(j)), false)), false))
		next := cand.MustWhereSelf(move, cur, false)
		cur.MustDrop()
		cur = next
		js.Close()
	}
	return cur
}

// coeffs is U[x,·]⊙e^{σλ} for every position: [B,L,V] float64, the left
// factor of every eigen-form entry.
func (e *Embedding) coeffs(x *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := x.MustSize()
	decay := s.T(s.T(s.T(perRow(sigma, size[0], gotch.Double, e.u.MustDevice())).MustMul(e.lam, false)).MustExp(false))
	rows := s.T(s.T(e.u.MustIndexSelect(0, s.T(x.MustFlatten(0, -1, false)), false)).MustView(append(size, int64(e.v)), false))
	return rows.MustMul(decay, false)
}

func (e *Embedding) Row(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	c := s.T(e.coeffs(x, sigma))
	q := s.T(c.MustMatmul(s.T(e.u.MustT(false)), false))
	return q.MustClampMin(ts.FloatScalar(0), false).MustTotype(dtype, true)
}

// Column equals Row: R is symmetric.
func (e *Embedding) Column(x *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	return e.Row(x, sigma, dtype)
}

func (e *Embedding) Propagate(w *ts.Tensor, sigma []float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b := w.MustSize()[0]
	decay := s.T(s.T(s.T(perRow(sigma, b, gotch.Double, e.u.MustDevice())).MustMul(e.lam, false)).MustExp(false))
	wu := s.T(s.T(w.MustTotype(gotch.Double, false)).MustMatmul(e.u, false))
	out := s.T(s.T(wu.MustMul(decay, false)).MustMatmul(s.T(e.u.MustT(false)), false))
	return out.MustClampMin(ts.FloatScalar(0), false).MustTotype(w.DType(), true)
}

// entryBudget bounds the float64 elements Entries gathers at once.
const entryBudget = 1 << 25

func (e *Embedding) Entries(x0, y *ts.Tensor, sigma []float64, dtype gotch.DType) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := y.MustSize()
	k, p := size[2], size[0]*size[1]
	c := s.T(s.T(e.coeffs(x0, sigma)).MustView([]int64{p, int64(e.v), 1}, false))
	ys := s.T(y.MustView([]int64{p, k}, false))
	chunk := max(1, entryBudget/(k*int64(e.v)))
	var parts []*ts.Tensor
	for lo := int64(0); lo < p; lo += chunk {
		n := min(chunk, p-lo)
		idx := s.T(s.T(ys.MustNarrow(0, lo, n, false)).MustFlatten(0, -1, false))
		rows := s.T(s.T(e.u.MustIndexSelect(0, idx, false)).MustView([]int64{n, k, int64(e.v)}, false))
		parts = append(parts, s.T(rows.MustBmm(s.T(c.MustNarrow(0, lo, n, false)), false)))
	}
	q := s.T(s.T(ts.MustCat(parts, 0)).MustView(size, false))
	return q.MustClampMin(ts.FloatScalar(0), false).MustTotype(dtype, true)
}

func (e *Embedding) JumpsInto(xt *ts.Tensor, dtype gotch.DType) (from, rate *ts.Tensor) {
	s := torchx.NewScope()
	defer s.Close()
	size := append(xt.MustSize(), e.nbr.MustSize()[1])
	flat := s.T(xt.MustFlatten(0, -1, false))
	from = e.nbr.MustIndexSelect(0, flat, false).MustView(size, true)
	rate = e.wt.MustIndexSelect(0, flat, false).MustView(size, true).MustTotype(dtype, true)
	return from, rate
}

func (e *Embedding) Prior() []float64 {
	pi := make([]float64, e.v)
	for i := range pi {
		pi[i] = 1 / float64(e.v)
	}
	return pi
}

func (e *Embedding) PriorKL(x0 *ts.Tensor) *ts.Tensor {
	flat := x0.MustFlatten(0, -1, false)
	defer flat.MustDrop()
	return e.priorKL.MustIndexSelect(0, flat, false).MustView(x0.MustSize(), true)
}
