package sampling

import (
	"context"
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// block is semi-autoregressive decoding: blocks of blockLen tokens are
// generated left to right, each by a diffusion sampler run on a window
// that holds the block and, as given tokens, as much of what comes before
// it as fits in the model's window (its training length). Sequences can
// thus be longer than anything the model was trained on; the model never
// sees more than window positions. The request's steps are shared out over
// the blocks (at least one each), so that T counts model-call rounds as it
// does for the other samplers.
type block struct {
	inner    loop
	blockLen int64
	window   int64
}

func newBlock(cfg Config, proc forward.Process, net Net) (loop, error) {
	inner, err := newDiffusion(cfg.BlockSampler, cfg, proc, net)
	if err != nil {
		return nil, fmt.Errorf("sampler \"block\" (sampling.block_sampler): %w", err)
	}
	return &block{inner: inner, blockLen: int64(cfg.BlockLen), window: int64(cfg.Window)}, nil
}

func (k *block) sample(ctx context.Context, c *chain) error {
	c.start(c.x.MustAddScalar(ts.IntScalar(0), false))
	blocks := (c.l + k.blockLen - 1) / k.blockLen
	for j := int64(0); j < blocks; j++ {
		start := j * k.blockLen
		hi := min(start+k.blockLen, c.l)
		lo := max(0, hi-k.window)
		steps := c.steps / int(blocks)
		if j < int64(c.steps)%blocks {
			steps++
		}
		w := k.windowChain(c, lo, start, hi, max(1, steps))
		err := k.inner.sample(ctx, w)
		c.calls += w.calls
		if err == nil {
			c.x = splice(c.x, w.x, lo)
		}
		w.close()
		if err != nil {
			return err
		}
	}
	return nil
}

// windowChain is the chain over positions lo..hi−1 of c, in which the
// positions before start (and those the request gives) are given.
func (k *block) windowChain(c *chain, lo, start, hi int64, steps int) *chain {
	n := hi - lo
	flags := make([]bool, n)
	for p := lo; p < hi; p++ {
		flags[p-lo] = p < start || c.isGiven(int(p))
	}
	w := &chain{b: c.b, l: n, steps: steps, fixed: flags, pending: c.pending, temp: c.temp, topP: c.topP, topPRule: c.topPRule, device: c.device}
	w.x = ts.MustFull([]int64{c.b, n}, ts.IntScalar(c.pending), gotch.Int64, c.device)
	w.tokens = c.x.MustNarrow(1, lo, n, false).MustAddScalar(ts.IntScalar(0), true)
	w.given = ts.MustOfSlice(flags).MustView([]int64{1, n}, true).MustTo(c.device, true).MustExpand([]int64{c.b, n}, false, true)
	if c.watch != nil {
		// Show the recorder the whole sequence. The window's own start
		// repeats the last frame, so it is skipped.
		started := false
		w.watch = func(x *ts.Tensor, calls int) {
			if !started {
				started = true
				return
			}
			full := splice(c.x.MustAddScalar(ts.IntScalar(0), false), x, lo)
			c.watch(full, c.calls+calls)
			full.MustDrop()
		}
	}
	return w
}

// splice copies part [B,n] into columns lo.. of x [B,L] in place and
// returns x.
func splice(x, part *ts.Tensor, lo int64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	s.T(x.MustNarrow(1, lo, part.MustSize()[1], false)).Copy_(part)
	return x
}
