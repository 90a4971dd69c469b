package train

import (
	"fmt"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Collective is what data-parallel training needs from a process group
// (package dist implements it on torch's c10d). Every rank calls its
// methods in the same order with tensors of the same shapes.
type Collective interface {
	Rank() int
	World() int
	AllReduce(xs []*ts.Tensor, average bool) error
	Broadcast(xs []*ts.Tensor, root int) error
}

// Distribute makes the trainer one rank of a data-parallel job, as torch
// DDP does it:
//
//   - rank 0's weights, optimizer moments and EMA are broadcast, so every
//     rank starts from the same state (fresh or resumed);
//   - every rank draws the same global batch of train.batch_size rows from
//     its Batcher and trains on its own contiguous share of B/W rows, so no
//     two ranks see the same block and the data position in checkpoints is
//     the global one (a job restarted at another world size resumes at the
//     same place);
//   - after the backward passes the gradients are averaged over the ranks
//     in flat buckets, before clipping (which then sees the global norm),
//     AdamW and the EMA, which thus stay identical on every rank;
//   - the logged loss is the mean over ranks; the other stats are rank 0's;
//   - rank 0 alone writes checkpoints and draws the progress bar.
//
// A step's noise (t, masks, dropout) is seeded from the step and the rank,
// rank 0 as in a single process: ranks draw independent noise. An
// objective without noise therefore trains exactly as one process with
// the whole batch would, up to the order of float additions.
func (t *Trainer) Distribute(c Collective) error {
	torchx.Lock()
	w := c.World()
	if w <= 1 {
		return nil
	}
	if t.cfg.BatchSize%w != 0 {
		return fmt.Errorf("train.batch_size %d does not split into %d equal shares (one per rank); choose a multiple of %d", t.cfg.BatchSize, w, w)
	}
	// Every rank resumed from the run folder on its own; they must agree
	// on where they are before rank 0's weights make them agree on the rest.
	// On the parameters' device: NCCL reduces only GPU tensors.
	step := ts.MustOfSlice([]int64{int64(t.step)}).MustTo(t.flat.param.MustDevice(), true)
	defer step.MustDrop()
	if err := c.Broadcast([]*ts.Tensor{step}, 0); err != nil {
		return fmt.Errorf("train: rank %d: agree on the step: %w", c.Rank(), err)
	}
	if s0 := int(hostInt64(step)); s0 != t.step {
		return fmt.Errorf("train: rank %d resumed at step %d, rank 0 at step %d: every rank must see the run folder %s as rank 0 writes it (one host, or a shared file system)",
			c.Rank(), t.step, s0, t.runDir)
	}
	var state []*ts.Tensor
	for _, name := range sortedKeys(t.vars) {
		state = append(state, t.vars[name])
	}
	state = append(state, t.opt.m...)
	state = append(state, t.opt.v...)
	if t.ema != nil {
		state = append(state, t.ema.shadow...)
	}
	var err error
	torchx.NoGrad(func() { err = c.Broadcast(state, 0) })
	if err != nil {
		return fmt.Errorf("train: broadcast rank 0's weights: %w", err)
	}
	t.coll = c
	if c.Rank() != 0 {
		t.Progress = nil
	}
	return nil
}

// rank is this trainer's rank (0 without Distribute).
func (t *Trainer) rank() int {
	if t.coll == nil {
		return 0
	}
	return t.coll.Rank()
}

// share is this rank's rows of the global batch b.
func (t *Trainer) share(b Batch) Batch {
	if t.coll == nil {
		return b
	}
	n := b.B / t.coll.World()
	r := t.coll.Rank()
	return b.Rows(r*n, (r+1)*n)
}

// reduceGrads averages the gradients over the ranks: one all-reduce of
// the flat gradient buffer (as DDP's buckets, here a single one).
func (t *Trainer) reduceGrads() error {
	if t.coll == nil {
		return nil
	}
	var err error
	torchx.NoGrad(func() { err = t.coll.AllReduce([]*ts.Tensor{t.flat.grad}, true) })
	return err
}

// meanOverRanks averages one number over the ranks.
func (t *Trainer) meanOverRanks(v float64) (float64, error) {
	if t.coll == nil {
		return v, nil
	}
	x := ts.MustOfSlice([]float64{v}).MustTo(t.flat.param.MustDevice(), true) // NCCL: on the GPU
	defer x.MustDrop()
	if err := t.coll.AllReduce([]*ts.Tensor{x}, true); err != nil {
		return 0, err
	}
	host := x.MustTo(gotch.CPU, false) // gotch copies values out of host memory only
	defer host.MustDrop()
	return host.Float64Values()[0], nil
}

// hostInt64 is the first value of x, wherever x lives.
func hostInt64(x *ts.Tensor) int64 {
	host := x.MustTo(gotch.CPU, false)
	defer host.MustDrop()
	return host.Int64Values()[0]
}
