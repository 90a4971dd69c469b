package sampling

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// Fast-dLLM's approximate key/value cache for semi-autoregressive decoding
// of a bidirectional network (sampling.block_cache prefix or dual). Exact
// decoding runs the whole window at every step. With the cache, the first
// step of a block runs it once (models.Transformer.Prefill) and keeps the
// keys and values of the decoded prefix (and, dual, of the masked suffix);
// every later step of that block computes only the block's own positions,
// attending to those frozen keys and values. They are stale: in the exact
// pass the prefix also attends to the block, whose tokens change as it is
// denoised. The cache is refreshed at the next block. With
// sampling.block_cache_check the exact pass runs beside it and the
// difference is reported (Result.Cache).

// CacheDeviation is how far cached logits were from the exact pass over
// the steps that used the cache: the largest absolute logit difference
// and the mean KL(exact ‖ cached) of the clean-token distributions at the
// block's positions.
type CacheDeviation struct {
	Steps        int
	MaxAbsLogit  float64
	MeanKL       float64
	klSum, nRows float64
}

func (d *CacheDeviation) add(exact, cached *ts.Tensor) {
	s := torchx.NewScope()
	defer s.Close()
	e := s.T(exact.MustTotype(gotch.Double, false))
	c := s.T(cached.MustTotype(gotch.Double, false))
	maxAbs := s.T(s.T(s.T(e.MustSub(c, false)).MustAbs(false)).MustMax(false)).Float64Values()[0]
	le := s.T(e.MustLogSoftmax(-1, gotch.Double, false))
	lc := s.T(c.MustLogSoftmax(-1, gotch.Double, false))
	kl := s.T(s.T(s.T(le.MustExp(false)).MustMul(s.T(le.MustSub(lc, false)), false)).MustSumDimIntlist([]int64{-1}, false, gotch.Double, false))
	d.Steps++
	d.MaxAbsLogit = math.Max(d.MaxAbsLogit, maxAbs)
	d.klSum += s.T(kl.MustSum(gotch.Double, false)).Float64Values()[0]
	d.nRows += float64(kl.Numel())
	d.MeanKL = d.klSum / d.nRows
}

// PrefillLM is a bidirectional network that can fill a key/value cache
// from a whole window and then run one block against it;
// models.Transformer implements it.
type PrefillLM interface {
	BlockLM
	Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor
	Prefill(x *ts.Tensor, cache *models.KVCache, keep, block int, suffix bool) *ts.Tensor
}

// approxWindow is the network a block's inner sampler sees under
// block_cache: for the window x [B, n] with the block at at … at+blk−1,
// the first call of the block fills the cache with an exact pass (whose
// logits it returns); later calls compute the block's rows from the
// cache. Rows outside the block are zeros there, never read: the prefix
// is decoded (SUBS copies it) and a full view's suffix is held.
type approxWindow struct {
	lm      PrefillLM
	cache   *models.KVCache
	at, blk int64
	suffix  bool
	started *bool
	check   *CacheDeviation // nil: no check
}

func (w approxWindow) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	if !*w.started {
		*w.started = true
		return w.lm.Prefill(x, w.cache, int(w.at), int(w.blk), w.suffix)
	}
	s := torchx.NewScope()
	defer s.Close()
	size := x.MustSize()
	blk := s.T(w.lm.ForwardBlock(s.T(x.MustNarrow(1, w.at, w.blk, false)), w.cache, 0, false))
	if w.check != nil {
		var exact *ts.Tensor
		torchx.NoGrad(func() { exact = s.T(w.lm.Forward(x, nil, false)) })
		w.check.add(s.T(exact.MustNarrow(1, w.at, w.blk, false)), blk)
	}
	v := blk.MustSize()[2]
	parts := []*ts.Tensor{}
	if w.at > 0 {
		parts = append(parts, s.T(ts.MustZeros([]int64{size[0], w.at, v}, blk.DType(), blk.MustDevice())))
	}
	parts = append(parts, blk)
	if rest := size[1] - w.at - w.blk; rest > 0 {
		parts = append(parts, s.T(ts.MustZeros([]int64{size[0], rest, v}, blk.DType(), blk.MustDevice())))
	}
	return ts.MustCat(parts, 1)
}
