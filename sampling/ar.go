package sampling

import (
	"context"
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// ar decodes a causal network left to right, one token per model call.
// The network reads BOS = V followed by the tokens so far, as in training
// (losses.ARInput), and its logits at the last position give the next
// token. With a key/value cache (ar) each call processes only the tokens
// not seen yet; without (ar-nocache) each call reruns the whole prefix,
// the cost a network without a cache pays. Given tokens are forced where
// they stand; the model sees only what is left of them.
type ar struct {
	model losses.Net
	lm    CachedLM // nil for ar-nocache
	bos   int64
}

func newAR(name string, net Net) (loop, error) {
	if obj := net.Objective.Name(); obj != "ar" {
		return nil, fmt.Errorf("sampler %q needs an autoregressive model (objective ar), got objective %s", name, obj)
	}
	a := &ar{model: net.Model, bos: int64(net.Objective.Spec().VocabOut)}
	if name == "ar" {
		lm, ok := net.Model.(CachedLM)
		if !ok {
			return nil, fmt.Errorf("sampler %q needs a model with a key/value cache (NewKVCache, ForwardCached); use ar-nocache", name)
		}
		a.lm = lm
	}
	return a, nil
}

func (a *ar) sample(ctx context.Context, c *chain) error {
	c.start(c.x.MustAddScalar(ts.IntScalar(0), false))
	var cache *models.KVCache
	if a.lm != nil {
		cache = a.lm.NewKVCache()
		defer cache.Close()
	}
	for i := range int(c.l) {
		if c.isGiven(i) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s := torchx.NewScope()
		logits := s.T(a.next(c, i, cache))
		p := s.T(c.adjust(s.T(logits.MustSoftmax(-1, gotch.Double, false))))
		tok := s.T(s.T(categorical(p)).MustUnsqueeze(1, false))
		next := c.x.MustAddScalar(ts.IntScalar(0), false)
		s.T(next.MustNarrow(1, int64(i), 1, false)).Copy_(tok)
		c.set(next)
		s.Close()
	}
	return nil
}

// next is the logits [B,V] for position i given BOS and positions 0..i−1.
func (a *ar) next(c *chain, i int, cache *models.KVCache) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	bos := s.T(ts.MustFull([]int64{c.b, 1}, ts.IntScalar(a.bos), gotch.Int64, c.device))
	input := s.T(ts.MustCat([]*ts.Tensor{bos, s.T(c.x.MustNarrow(1, 0, int64(i), false))}, 1))
	c.calls++
	var out *ts.Tensor
	if cache != nil {
		fed := int64(cache.Len())
		out = s.T(a.lm.ForwardCached(s.T(input.MustNarrow(1, fed, int64(i+1)-fed, false)), nil, cache))
	} else {
		torchx.NoGrad(func() { out = s.T(a.model.Forward(input, nil, false)) })
	}
	n := out.MustSize()[1]
	return s.T(out.MustNarrow(1, n-1, 1, false)).MustSqueezeDim(1, false)
}
