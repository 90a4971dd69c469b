package sampling

import (
	"context"
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// block is semi-autoregressive decoding: blocks of blockLen tokens are
// generated left to right, each by a diffusion sampler run on a window of
// the sequence in which everything but the block's undecided positions is
// held fixed. Two conventions each for the window and for the steps:
//
//   - sampling.block_view prefix (default): the window is the block and,
//     as given tokens, as much of what comes before it as fits in
//     sampling.window (the training length), so sequences can be longer
//     than anything the model was trained on (BD3-LM's semi-AR decoding);
//     full: the whole sequence (at most window long) with the later
//     blocks masked, as LLaDA's generate() feeds its model (absorbing
//     only: a masked future needs a mask state).
//   - sampling.block_steps shared (default): the request's T is shared
//     out over the blocks (at least one each), so T counts model-call
//     rounds as for the other samplers (LLaDA's steps); per_block: every
//     block gets T steps (BD3-LM's T).
//
// block-cached is BD3-LM's sampler proper, for BD3-LM networks: the same
// windows and steps, but the clean blocks' keys and values stay in the
// model's KV cache (models.Transformer.ForwardBlock), so a denoising step
// costs one block of query positions instead of the whole window, plus one
// call per block to cache it once decoded. While the sequence fits the
// window it draws exactly the tokens of block under one seed (the same
// draws, the same logits up to float rounding); past it, a cached block
// keeps the context it was decoded with, where block re-reads the window
// (RoPE makes both see the same relative positions).
type block struct {
	inner    loop
	blockLen int64
	window   int64
	full     bool
	perBlock bool
	whole    int64 // > 0: lengths must be whole blocks of this size (BD3-LM)
	// cached: the inner sampler is rebuilt per block on a view of lm
	// bound to the cache, with den (MDLM's SUBS) reading its logits.
	cached bool
	lm     BlockLM
	den    Net
	cfg    Config
	proc   forward.Process
	// approx is Fast-dLLM's block_cache (prefix or dual; "" for none):
	// the inner sampler is rebuilt per block on an approxWindow of plm.
	approx string
	plm    PrefillLM
	net    Net
	dev    *CacheDeviation // with block_cache_check
}

func (k *block) deviation() *CacheDeviation { return k.dev }

// BlockLM is a BD3-LM network with a key/value cache of clean blocks;
// models.Transformer implements it.
type BlockLM interface {
	MaxLen() int
	NewKVCache() *models.KVCache
	ForwardBlock(x *ts.Tensor, cache *models.KVCache, from int, commit bool) *ts.Tensor
}

func newBlock(cfg Config, proc forward.Process, net Net, cached bool) (loop, error) {
	inner, err := newDiffusion(cfg.BlockSampler, cfg, proc, net)
	if err != nil {
		return nil, fmt.Errorf("sampler \"block\" (sampling.block_sampler): %w", err)
	}
	full := cfg.BlockView == "full"
	if full && proc.Name() != "absorbing" {
		return nil, fmt.Errorf("sampler \"block\": sampling.block_view full masks the later blocks, which needs the absorbing process, got %s; use prefix", proc.Name())
	}
	// A BD3-LM network denoises one block given clean earlier blocks: the
	// window must be whole blocks and hold one noisy block.
	if b := net.Objective.Spec().BlockSize; b > 0 && (cfg.BlockLen != b || full || cfg.Window%b != 0) {
		return nil, fmt.Errorf("sampler \"block\" for a BD3-LM network of block size %d needs sampling.block_len %d (got %d), block_view prefix (got %s) and a window that is a multiple of %d (got %d)",
			b, b, cfg.BlockLen, cfg.BlockView, b, cfg.Window)
	}
	k := &block{inner: inner, blockLen: int64(cfg.BlockLen), window: int64(cfg.Window), full: full,
		perBlock: cfg.BlockSteps == "per_block", whole: int64(net.Objective.Spec().BlockSize)}
	if cached {
		lm, ok := net.Model.(BlockLM)
		if k.whole == 0 || !ok {
			return nil, fmt.Errorf("sampler \"block-cached\" caches the clean blocks of a BD3-LM network (objective bd3lm), got objective %s; use block", net.Objective.Name())
		}
		// MDLM's denoiser reads the block's logits the same way bd3lm's
		// does (SUBS over V tokens and the mask).
		mcfg := losses.DefaultConfig()
		mcfg.Name = "mdlm"
		mdlm, err := losses.New(mcfg, proc, proc.Vocab())
		if err != nil {
			return nil, err
		}
		k.cached, k.lm, k.den, k.cfg, k.proc = true, lm, Net{Objective: mdlm, Device: net.Device}, cfg, proc
	}
	if cfg.BlockCache != "none" {
		plm, ok := net.Model.(PrefillLM)
		spec := net.Objective.Spec()
		switch {
		case cached || spec.BlockSize > 0:
			return nil, fmt.Errorf("sampling.block_cache %s approximates a bidirectional network's cache; a BD3-LM network's is exact: use sampler block-cached", cfg.BlockCache)
		case !ok || spec.TimeCond:
			return nil, fmt.Errorf("sampling.block_cache %s needs a bidirectional network without time input (objective mdlm), got objective %s", cfg.BlockCache, net.Objective.Name())
		}
		k.approx, k.plm, k.net, k.cfg, k.proc = cfg.BlockCache, plm, net, cfg, proc
		if cfg.BlockCacheCheck {
			k.dev = &CacheDeviation{}
		}
	}
	return k, nil
}

// cachedWindow is the network a block's inner sampler sees under
// block-cached: for the window x [B, n] whose last positions from at on are
// the block, the block's logits from the cache; the window's decoded
// prefix gets zeros, which SUBS never reads (its positions are not masked).
type cachedWindow struct {
	lm    BlockLM
	cache *models.KVCache
	from  int // first window position, absolute: the cache is read from here
	at    int64
}

func (w cachedWindow) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	size := x.MustSize()
	blk := s.T(w.lm.ForwardBlock(s.T(x.MustNarrow(1, w.at, size[1]-w.at, false)), w.cache, w.from, false))
	if w.at == 0 {
		return blk.MustShallowClone()
	}
	bs := blk.MustSize()
	prefix := s.T(ts.MustZeros([]int64{size[0], w.at, bs[2]}, blk.DType(), blk.MustDevice()))
	return ts.MustCat([]*ts.Tensor{prefix, blk}, 1)
}

func (k *block) sample(ctx context.Context, c *chain) error {
	if k.whole > 0 && c.l%k.whole != 0 {
		return fmt.Errorf("sampler block: a BD3-LM network of block size %d generates whole blocks, asked for %d tokens", k.whole, c.l)
	}
	if k.full && c.l > k.window {
		return fmt.Errorf("block_view full shows the whole sequence, %d tokens, more than sampling.window %d; use prefix for longer sequences", c.l, k.window)
	}
	c.start(c.x.MustAddScalar(ts.IntScalar(0), false))
	var cache *models.KVCache
	if k.cached && c.l > int64(k.lm.MaxLen()) {
		return fmt.Errorf("sampler block-cached: %d tokens do not fit the KV cache of model.max_len %d positions; use block (which re-reads a window) or a larger max_len", c.l, k.lm.MaxLen())
	}
	switch {
	case k.cached:
		cache = k.lm.NewKVCache()
		defer cache.Close()
	case k.approx != "":
		cache = k.plm.NewKVCache()
		defer cache.Close()
	}
	blocks := (c.l + k.blockLen - 1) / k.blockLen
	for j := int64(0); j < blocks; j++ {
		start := j * k.blockLen
		hi := min(start+k.blockLen, c.l)
		lo, end := max(0, hi-k.window), hi
		if k.full {
			lo, end = 0, c.l
		}
		steps := c.steps
		if !k.perBlock {
			steps = c.steps / int(blocks)
			if j < int64(c.steps)%blocks {
				steps++
			}
		}
		w := k.windowChain(c, lo, start, hi, end, max(1, steps))
		inner := k.inner
		if k.cached || k.approx != "" {
			net := k.den
			if k.cached {
				net.Model = cachedWindow{lm: k.lm, cache: cache, from: int(lo), at: start - lo}
			} else {
				net = k.net
				net.Model = approxWindow{lm: k.plm, cache: cache, at: start - lo, blk: hi - start, suffix: k.approx == "dual",
					started: new(bool), check: k.dev}
			}
			var err error
			if inner, err = newDiffusion(k.cfg.BlockSampler, k.cfg, k.proc, net); err != nil {
				w.close()
				return err
			}
		}
		err := inner.sample(ctx, w)
		c.calls += w.calls
		if err == nil {
			c.x = splice(c.x, w.x, lo)
		}
		w.close()
		if err != nil {
			return err
		}
		if k.cached {
			// The decoded block joins the cache: one more network call.
			done := c.x.MustNarrow(1, start, hi-start, false)
			k.lm.ForwardBlock(done, cache, int(lo), true).MustDrop()
			done.MustDrop()
			c.calls++
		}
	}
	return nil
}

// windowChain is the chain over positions lo..end−1 of c, in which the
// positions before start and from hi on (still masked, for the full view),
// and those the request gives, are held.
func (k *block) windowChain(c *chain, lo, start, hi, end int64, steps int) *chain {
	n := end - lo
	flags := make([]bool, n)
	for p := lo; p < end; p++ {
		flags[p-lo] = p < start || p >= hi || c.isGiven(int(p))
	}
	w := &chain{b: c.b, l: n, steps: steps, fixed: flags, pending: c.pending, temp: c.temp, topP: c.topP, topPRule: c.topPRule, device: c.device, tick: c.tick}
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
