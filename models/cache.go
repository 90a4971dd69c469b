package models

import (
	"fmt"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// KVCache holds, per layer, the rotated keys and the values of every
// position a causal model has already seen, so that autoregressive
// decoding costs one position's work per token instead of a forward pass
// over the whole prefix. The buffers are [B, H, max_len, D], allocated at
// the first ForwardCached; a cache serves one batch of sequences.
type KVCache struct {
	layers []kvLayer
	n      int // positions filled
}

// kvLayer is one block's share of the cache.
type kvLayer struct {
	k, v   *ts.Tensor
	maxLen int
}

// NewKVCache returns an empty cache for m.
func (m *Transformer) NewKVCache() *KVCache {
	c := &KVCache{layers: make([]kvLayer, len(m.blocks))}
	for i := range c.layers {
		c.layers[i].maxLen = m.cfg.MaxLen
	}
	return c
}

// Len is the number of positions cached; nil counts as empty.
func (c *KVCache) Len() int {
	if c == nil {
		return 0
	}
	return c.n
}

// Close frees the buffers; the cache is empty afterwards.
func (c *KVCache) Close() {
	for i := range c.layers {
		kv := &c.layers[i]
		if kv.k != nil {
			kv.k.MustDrop()
			kv.v.MustDrop()
			kv.k, kv.v = nil, nil
		}
	}
	c.n = 0
}

// layer is block i's share; nil for a nil cache (a plain forward pass).
func (c *KVCache) layer(i int) *kvLayer {
	if c == nil {
		return nil
	}
	return &c.layers[i]
}

// ForwardCached runs a causal model on the next tokens x [B, l] (int64),
// placed after the cache's positions, and returns their logits
// [B, l, VocabOut]; their keys and values join the cache. Decoding a
// sequence one chunk at a time gives the logits of Forward on the whole
// sequence. It never records gradients and never applies dropout.
func (m *Transformer) ForwardCached(x, sigma *ts.Tensor, cache *KVCache) *ts.Tensor {
	if !m.spec.Causal {
		panic("models: ForwardCached needs a causal model (a bidirectional one sees later positions)")
	}
	if len(cache.layers) != len(m.blocks) {
		panic(fmt.Sprintf("models: cache for %d layers used with a %d-layer model", len(cache.layers), len(m.blocks)))
	}
	var logits *ts.Tensor
	torchx.NoGrad(func() {
		logits = m.forward(x, sigma, false, cache, 0)
	})
	cache.n += int(x.MustSize()[1])
	return logits
}

// ForwardBlock runs a BD3-LM network (Spec.BlockSize > 0) on one block x
// [B, l] at positions cache.Len() … cache.Len()+l−1, attending without a
// mask to itself and to the cached clean positions from `from` on, and
// returns its logits [B, l, VocabOut]. This is the noisy half of the
// x_t ⊕ x_0 pass for that block, at the cost of l query positions: the
// clean earlier blocks never attend to noisy tokens, so their keys and
// values do not change while later blocks are decoded. With commit the
// block's keys and values join the cache (call it once with the decoded,
// clean block); without, the cache is unchanged (a denoising step). No
// gradients, no dropout.
func (m *Transformer) ForwardBlock(x *ts.Tensor, cache *KVCache, from int, commit bool) *ts.Tensor {
	if m.spec.BlockSize == 0 {
		panic("models: ForwardBlock needs a BD3-LM network (Spec.BlockSize > 0)")
	}
	if len(cache.layers) != len(m.blocks) {
		panic(fmt.Sprintf("models: cache for %d layers used with a %d-layer model", len(cache.layers), len(m.blocks)))
	}
	if from < 0 || from > cache.n {
		panic(fmt.Sprintf("models: ForwardBlock from position %d with %d cached", from, cache.n))
	}
	var logits *ts.Tensor
	torchx.NoGrad(func() {
		logits = m.forward(x, nil, false, cache, from)
	})
	if commit {
		cache.n += int(x.MustSize()[1])
	}
	return logits
}

// append writes k and v [B, H, l, D] at positions offset … offset+l−1 and
// returns views [B, H, offset+l−from, D] of the cached positions from
// `from` on, owned by s. Positions past the committed ones are scratch: a
// write there that is not committed is overwritten by the next.
func (kv *kvLayer) append(s *torchx.Scope, k, v *ts.Tensor, offset, from int) (*ts.Tensor, *ts.Tensor) {
	size := k.MustSize()
	if kv.k == nil {
		shape := []int64{size[0], size[1], int64(kv.maxLen), size[3]}
		kv.k = ts.MustZeros(shape, k.DType(), k.MustDevice())
		kv.v = ts.MustZeros(shape, k.DType(), k.MustDevice())
	}
	if b := kv.k.MustSize()[0]; b != size[0] {
		panic(fmt.Sprintf("models: cache holds batch size %d, got %d", b, size[0]))
	}
	l := size[2]
	if int(l)+offset > kv.maxLen {
		panic(fmt.Sprintf("models: positions up to %d exceed model.max_len %d", offset+int(l), kv.maxLen))
	}
	s.T(kv.k.MustNarrow(2, int64(offset), l, false)).Copy_(k)
	s.T(kv.v.MustNarrow(2, int64(offset), l, false)).Copy_(v)
	n := int64(offset) + l - int64(from)
	return s.T(kv.k.MustNarrow(2, int64(from), n, false)), s.T(kv.v.MustNarrow(2, int64(from), n, false))
}
