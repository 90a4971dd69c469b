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
	n      int // positions committed: new tokens go here
	// filled ≥ n is where attention stops reading: positions n…filled−1
	// hold keys and values a Prefill left after the committed ones (the
	// masked suffix of Fast-dLLM's dual cache), read but not moved.
	filled int
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
	c.n, c.filled = 0, 0
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
	cache.filled = cache.n
	return logits
}

// ForwardBlock runs one block x [B, l] of a bidirectional network at
// positions cache.Len() … cache.Len()+l−1, attending without a mask to
// itself and to the cached positions from `from` on (and to a Prefill's
// suffix), and returns its logits [B, l, VocabOut]. With commit the
// block's keys and values join the cache; without, the cache is unchanged
// (a denoising step). No gradients, no dropout.
//
// For a BD3-LM network (Spec.BlockSize > 0) this is exact: it is the noisy
// half of the x_t ⊕ x_0 pass for that block, since clean blocks never
// attend to noisy tokens and their keys and values do not change while
// later blocks are decoded. For an MDLM network it is Fast-dLLM's
// approximate cache: the cached positions would attend to the block too,
// so their keys and values go stale as it changes (Prefill refreshes them).
func (m *Transformer) ForwardBlock(x *ts.Tensor, cache *KVCache, from int, commit bool) *ts.Tensor {
	if m.spec.Causal {
		panic("models: ForwardBlock needs a bidirectional network (a causal one decodes with ForwardCached)")
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
		cache.filled = max(cache.filled, cache.n)
	}
	return logits
}

// Prefill runs a bidirectional (non-BD3-LM) network on the whole window
// x [B, n] (a plain forward pass, whose logits it returns) and keeps the
// keys and values of its first keep positions as the committed cache;
// with suffix it also keeps those after keep+l for blocks of l = block
// tokens (Fast-dLLM's dual cache), read by later ForwardBlock calls.
func (m *Transformer) Prefill(x *ts.Tensor, cache *KVCache, keep, block int, suffix bool) *ts.Tensor {
	if m.spec.Causal || m.spec.BlockSize > 0 {
		panic("models: Prefill is for bidirectional networks (MDLM, D3PM, SEDD)")
	}
	cache.n, cache.filled = 0, 0
	var logits *ts.Tensor
	torchx.NoGrad(func() {
		logits = m.forward(x, nil, false, cache, 0)
	})
	n := int(x.MustSize()[1])
	cache.n, cache.filled = keep, keep
	if suffix && keep+block < n {
		cache.filled = n
	}
	return logits
}

// append writes k and v [B, H, l, D] at positions offset … offset+l−1 and
// returns views [B, H, max(offset+l, filled)−from, D] of the cached
// positions from `from` on, owned by s. Positions past the committed ones are scratch: a
// write there that is not committed is overwritten by the next.
func (kv *kvLayer) append(s *torchx.Scope, k, v *ts.Tensor, offset, from, filled int) (*ts.Tensor, *ts.Tensor) {
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
	n := max(int64(offset)+l, int64(filled)) - int64(from)
	return s.T(kv.k.MustNarrow(2, int64(from), n, false)), s.T(kv.v.MustNarrow(2, int64(from), n, false))
}
