package models

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// Lanes split a CPU training pass by rows of the batch: each share goes
// through the embedding and the blocks on its own OS thread, with one
// intra-op thread and single-threaded matrix products.
//
// Why: on a few cores a small model's step is op-bound. Most of its ops
// are too small for libtorch's intra-op threads to pay off, and libtorch
// 1.13's CPU bmm multiplies the heads one after another, so one process's
// two threads leave a core idle much of the step (PyTorch's tiny-preset
// step here is as fast with one intra-op thread as with two). k lanes of
// B/k rows keep k cores busy, as k data-parallel processes would (2 ranks ×
// 1 thread trained 1.8× faster than 1 × 2 here), in one process and with
// the one batch's maths:
//
//	forward   lane i   h_i = blocks(embed(x[rows_i]), σ[rows_i]), its own autograd graph
//	          main     h = cat(ĥ_0 … ĥ_k−1), ĥ_i = h_i detached, a leaf that requires grad;
//	                   the output layer and the loss as usual
//	backward  main     loss.Backward() ends at the leaves ĥ_i
//	          lane i   g_i = ∂(Σ h_i ⊙ ĥ_i.grad)/∂θ  (torchx.Grads: nothing accumulated)
//	          main     θ.grad += g_0, then g_1, …     (FinishBackward)
//
// Rows never interact in the blocks (attention, norms and the MLP act
// within a sequence) and the dropout noise is the whole batch's, drawn in
// the same order (a lane reads its rows), so this is the batch's loss and
// gradient. Only rounding differs: a lane's products have fewer rows, and
// a weight's gradient, a sum over the batch, is added up per lane
// (TestLanesSameLossAndGradients). Every addition has a fixed order, so a
// run repeats to the bit.
type lanePass struct {
	outs   []*ts.Tensor // h_i, with their graphs
	leaves []*ts.Tensor // ĥ_i, where the main graph starts
}

// rowRange is rows lo…lo+n−1 of a batch.
type rowRange struct{ lo, n int64 }

// laneRows splits b rows into k contiguous ranges, the first b mod k of
// them one row longer.
func laneRows(b int64, k int) []rowRange {
	r := make([]rowRange, k)
	lo := int64(0)
	for i := range r {
		n := b / int64(k)
		if int64(i) < b%int64(k) {
			n++
		}
		r[i] = rowRange{lo, n}
		lo += n
	}
	return r
}

// laneCount is how many lanes a pass runs on: model.lanes (0: one per
// libtorch thread), at most one per row, for a CPU training pass with
// gradients and without a cache; 1 otherwise. Two kinds of pass run
// without them: one whose input carries gradients (embed-and-diffuse's
// noisy embeddings, whose graph back to the embedding table the lanes
// would have to share), and one with the reference dropout
// (inlineDropout), which draws at each site in an order lanes would change.
func (m *Transformer) laneCount(in input, ps *pass, cache *KVCache) int {
	b := in.shape[0]
	if !ps.train || !m.cpu || cache != nil || in.grad || m.inlineDropout || b < 2 {
		return 1
	}
	k := m.cfg.Lanes
	if k == 0 {
		k = torchx.Threads()
	}
	if k <= 1 || !torchx.GradEnabled() {
		return 1
	}
	return int(min(int64(k), b))
}

// runLanes is runTrunk on k lanes: it returns h [B, l, W] and leaves the
// lanes' graphs to FinishBackward.
func (m *Transformer) runLanes(k int, in input, sigma *ts.Tensor, ps *pass) *ts.Tensor {
	m.dropPending()
	outs, rows := make([]*ts.Tensor, k), laneRows(in.shape[0], k)
	m.onLanes(k, func(i int) { outs[i] = m.lane(in, sigma, ps, rows[i]) })
	lp := &lanePass{outs: outs, leaves: make([]*ts.Tensor, k)}
	for i, o := range outs {
		leaf := o.MustDetach(false)
		torchx.Inplace(leaf, func() { leaf.MustRequiresGrad_(true) })
		lp.leaves[i] = leaf
	}
	m.pending = lp
	return ts.MustCat(lp.leaves, 0)
}

// onLanes runs fn(0) … fn(k−1) at once on the model's lane workers
// (started on first use, stopped when the model is garbage), with
// OpenBLAS single-threaded meanwhile.
func (m *Transformer) onLanes(k int, fn func(i int)) {
	if m.workers == nil || m.workers.Len() < k {
		if m.workers != nil {
			m.workers.Close()
		}
		w := torchx.NewWorkers(k)
		m.workers = w
		runtime.AddCleanup(m, func(w *torchx.Workers) { w.Close() }, w)
	}
	torchx.WithBLASThreads(1, func() { m.workers.Run(k, fn) })
}

// lane runs rows r of the pass through the input layer and the blocks.
func (m *Transformer) lane(in input, sigma *ts.Tensor, ps *pass, r rowRange) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	lp := *ps
	lp.site, lp.lane = 0, r
	if m.time != nil {
		lp.cond = s.T(m.time.forward(s.T(sigma.MustNarrow(0, r.lo, r.n, false))))
	}
	return m.runBlocks(s.T(in.rows(r.lo, r.n)), &lp, nil)
}

// FinishBackward completes the backward pass of a training forward that
// ran on lanes, once loss.Backward() has reached the lanes' outputs: each
// lane backpropagates its rows to the trunk's parameters on its own
// thread, and their gradients are added to the parameters' in lane order.
// Without a lane pass since the last call it does nothing. The trainer
// calls it after every backward (losses.TrainStep). One training forward
// pass per backward: a second one before FinishBackward replaces the
// first, whose lanes then get no gradient (a loss that called the network
// twice would need a list here; none does).
func (m *Transformer) FinishBackward() error {
	lp := m.pending
	if lp == nil {
		return nil
	}
	m.pending = nil
	defer lp.drop()
	grads := make([][]*ts.Tensor, len(lp.outs))
	errs := make([]error, len(lp.outs))
	m.onLanes(len(lp.outs), func(i int) { grads[i], errs[i] = lp.backward(i, m.trunk) })
	defer func() {
		for _, gs := range grads {
			for _, g := range gs {
				if g != nil {
					g.MustDrop()
				}
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return addGrads(m.trunk, grads)
}

// backward is lane i's share of the parameters' gradients.
func (lp *lanePass) backward(i int, params []*ts.Tensor) ([]*ts.Tensor, error) {
	g := lp.leaves[i].MustGrad(false)
	defer g.MustDrop()
	if !g.MustDefined() {
		return nil, fmt.Errorf("models: lane %d's rows have no gradient: FinishBackward belongs after the loss's Backward", i)
	}
	s := torchx.NewScope()
	defer s.Close()
	root := s.T(s.T(lp.outs[i].MustMul(g, false)).MustSum(g.DType(), false))
	grads, err := torchx.Grads([]*ts.Tensor{root}, params)
	if err != nil {
		return nil, fmt.Errorf("models: lane %d: %w", i, err)
	}
	return grads, nil
}

// addGrads adds grads[i][j], lane i's gradient of params[j] (nil: none),
// to the parameters' gradients, lane by lane, defining those that have
// none yet; a parameter no lane reached keeps its gradient as it is.
func addGrads(params []*ts.Tensor, grads [][]*ts.Tensor) error {
	reached := func(j int) bool {
		for i := range grads {
			if grads[i][j] != nil {
				return true
			}
		}
		return false
	}
	var undefined []*ts.Tensor
	for j, p := range params {
		g := p.MustGrad(false)
		if !g.MustDefined() && reached(j) {
			undefined = append(undefined, p)
		}
		g.MustDrop()
	}
	if err := torchx.DefineGrads(undefined); err != nil {
		return fmt.Errorf("models: lanes: %w", err)
	}
	torchx.NoGrad(func() {
		for j, p := range params {
			if !reached(j) {
				continue
			}
			g := p.MustGrad(false)
			for i := range grads {
				if gi := grads[i][j]; gi != nil {
					torchx.Inplace(g, func() { g.MustAdd_(gi) })
				}
			}
			g.MustDrop()
		}
	})
	return nil
}

// dropPending frees a lane pass that was never backpropagated (its loss
// was not used) before the next one. One that was, without
// FinishBackward, is a programming error that would train the trunk on
// no gradient: it panics.
func (m *Transformer) dropPending() {
	lp := m.pending
	if lp == nil {
		return
	}
	m.pending = nil
	defer lp.drop()
	for _, l := range lp.leaves {
		g := l.MustGrad(false)
		done := g.MustDefined()
		g.MustDrop()
		if done {
			panic("models: a lane pass was backpropagated without FinishBackward, so the blocks got no gradient; call it after every Backward (losses.TrainStep does)")
		}
	}
}

func (lp *lanePass) drop() {
	for _, t := range append(lp.outs, lp.leaves...) {
		t.MustDrop()
	}
}
