package models

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Spec says what the surrounding method needs from the network.
type Spec struct {
	VocabIn  int  // input states (absorbing processes add the mask state)
	VocabOut int  // logits per position
	Causal   bool // attend only to earlier positions (the AR baseline)
	TimeCond bool // take noise levels σ through adaLN (SEDD, D3PM)
	// BlockSize > 0 makes a BD3-LM network: its input is x_t ⊕ x_0 [B, 2L]
	// (noisy then clean copy, both at positions 0…L−1) under
	// BlockDiffMask(L, BlockSize); see Forward.
	BlockSize int
	// EmbedDim > 0 makes an embed-and-diffuse network (continuous.go): the
	// token table is [VocabIn, EmbedDim], its input a noisy embedding z
	// [B, L, EmbedDim] through one linear layer, its output x̂0 [B, L,
	// VocabOut = EmbedDim].
	EmbedDim int
}

// Transformer is the DiT-style backbone of MDLM and SEDD:
//
//	h = embed(x)                      token embedding, no absolute positions
//	c = timeEmbed(σ)                  only with Spec.TimeCond
//	h = block_i(h, c)  for each layer rotary attention + GELU MLP, adaLN(c)
//	logits = proj(modulate(norm(h), c))
//
// Parameters (names as in checkpoints): embed.weight; time.fc{1,2}.*;
// blocks.N.{norm1,norm2}.weight, blocks.N.attn.{qkv,out}.weight,
// blocks.N.mlp.fc{1,2}.{weight,bias}, blocks.N.ada.*; output.norm.weight,
// output.ada.*, output.proj.{weight,bias}. The output projection is untied
// from the embedding and starts as normal(0, 0.02) like GPT-2 (not zero
// like MDLM's DDiT), so the first loss is ≈ ln V but not exactly.
type Transformer struct {
	cfg    Config // resolved
	spec   Spec
	embed  *ts.Tensor // [VocabIn, W]; [VocabIn, EmbedDim] for embed-and-diffuse
	input  *linear    // EmbedDim → W, embed-and-diffuse only
	time   *timeEmbed // nil without time conditioning
	blocks []*block
	output outputLayer
	rope   rotary
	counts paramCounts
	cpu    bool
	// trunk holds the parameters before the output layer (embedding or
	// input projection, time embedding, blocks): what lanes compute
	// gradients of. pending is the last lane pass until FinishBackward.
	trunk   []*ts.Tensor
	pending *lanePass
	workers *torchx.Workers // the lanes' threads
	// inlineDropout draws each dropout's noise at its site
	// (ts.MustDropout) instead of ahead on a second thread: the
	// reference TestDropoutNoiseSameAsDropout compares against.
	inlineDropout bool
}

// paramCounts splits the parameter count the way a reader of a results
// table wants it: vocabulary-sized parts apart from the rest.
type paramCounts struct {
	embedding, time, blocks, output int64
}

// New creates the network's parameters under p, on p's device.
func New(p *nn.Path, cfg Config, spec Spec) (*Transformer, error) {
	cfg, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	if spec.VocabIn < 1 || spec.VocabOut < 1 {
		return nil, fmt.Errorf("models: spec with vocab_in %d and vocab_out %d, want positive sizes", spec.VocabIn, spec.VocabOut)
	}
	device := p.Device()
	if cfg.Attention == "fused" {
		if err := probeFused(device); err != nil {
			return nil, err
		}
	}
	m := &Transformer{cfg: cfg, spec: spec, rope: newRotary(cfg.MaxLen, cfg.headDim(), device), cpu: !device.IsCuda()}
	var ps params
	if spec.EmbedDim > 0 {
		if spec.VocabOut != spec.EmbedDim || spec.Causal || spec.BlockSize > 0 || !spec.TimeCond {
			return nil, fmt.Errorf("models: an embed-and-diffuse network predicts x̂0 of its %d-dimensional embeddings from the noise level: spec %+v", spec.EmbedDim, spec)
		}
		m.embed = ps.new(p.Sub("embed"), "weight", []int64{int64(spec.VocabIn), int64(spec.EmbedDim)}, nn.NewRandnInit(0, 1))
		in := ps.newLinear(p.Sub("input").Sub("proj"), spec.EmbedDim, cfg.Width, 0.02, true)
		m.input = &in
	} else {
		m.embed = ps.new(p.Sub("embed"), "weight", []int64{int64(spec.VocabIn), int64(cfg.Width)}, nn.NewRandnInit(0, 0.02))
	}
	m.counts.embedding = ps.n
	if spec.TimeCond {
		t := ps.newTimeEmbed(p.Sub("time"), cfg.CondDim, device)
		m.time = &t
	}
	m.counts.time = ps.n - m.counts.embedding
	for i := range cfg.Layers {
		m.blocks = append(m.blocks, ps.newBlock(p.Sub("blocks").Sub(strconv.Itoa(i)), cfg, spec.TimeCond))
	}
	m.counts.blocks = ps.n - m.counts.embedding - m.counts.time
	m.trunk = slices.Clone(ps.list)
	m.output = ps.newOutputLayer(p.Sub("output"), cfg, spec)
	m.counts.output = ps.n - m.counts.embedding - m.counts.time - m.counts.blocks
	if ps.err != nil {
		return nil, fmt.Errorf("models: new transformer: %w", ps.err)
	}
	c := m.counts
	slog.Info("model parameters", "preset", cfg.Preset, "embedding", c.embedding, "time", c.time,
		"blocks", c.blocks, "output", c.output, "total", m.NumParams())
	return m, nil
}

// MaxLen is the number of positions the rotary table (and a KV cache)
// holds: model.max_len.
func (m *Transformer) MaxLen() int { return m.cfg.MaxLen }

// Spec returns the spec the model was built for.
func (m *Transformer) Spec() Spec { return m.spec }

// NumParams counts the trainable parameters.
func (m *Transformer) NumParams() int64 {
	c := m.counts
	return c.embedding + c.time + c.blocks + c.output
}

// Forward maps token ids x [B,L] (int64) and, iff spec.TimeCond, noise
// levels sigma [B] (float32; nil otherwise) to logits [B,L,VocabOut]
// float32. Dropout is active only when train is true. Every intermediate
// is freed before it returns; autograd keeps what backward needs.
//
// A BD3-LM network (Spec.BlockSize = b) takes x = x_t ⊕ x_0 [B, 2L] and
// returns logits for all 2L positions (the objective reads the first L):
// each half is at positions 0…L−1, and attention follows BlockDiffMask, so
// the prediction for a noisy block sees that block's noisy tokens and the
// clean tokens of earlier blocks only.
func (m *Transformer) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	return m.forward(x, sigma, train, nil, 0)
}

// forward is Forward with an optional KV cache (see ForwardCached and
// ForwardBlock), whose positions from `from` on the new ones attend to.
func (m *Transformer) forward(x, sigma *ts.Tensor, train bool, cache *KVCache, from int) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	ps := &pass{rope: m.rope, offset: cache.Len(), from: from, train: train}
	if cache != nil {
		ps.filled = cache.filled
	}
	blockCached := !m.spec.Causal && cache != nil
	l := m.checkInputs(x, sigma, ps.offset, blockCached)
	if !blockCached { // cached blocks and Prefill's windows attend without a mask
		m.attend(s, ps, l, x.MustDevice())
	}
	return m.stack(m.tokens(x), sigma, ps, cache)
}

// attend sets the pass's attention mask for l input positions: BD3-LM's
// over x_t ⊕ x_0, causal for AR, none for a bidirectional network.
func (m *Transformer) attend(s *torchx.Scope, ps *pass, l int, dev gotch.Device) {
	switch {
	case m.spec.BlockSize > 0:
		ps.halves = true
		ps.mask = s.T(BlockDiffMask(l/2, m.spec.BlockSize, dev))
	case m.spec.Causal && l > 1:
		ps.causal = true
		ps.mask = s.T(causalMask(l, ps.offset, dev))
	}
}

// stack runs the blocks and the output layer on the input stream.
func (m *Transformer) stack(in input, sigma *ts.Tensor, ps *pass, cache *KVCache) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	if m.time != nil {
		ps.cond = s.T(m.time.forward(sigma))
	}
	return m.output.forward(s.T(m.runTrunk(in, sigma, ps, cache)), ps.cond)
}

// runTrunk runs the blocks on the input stream, [B, l, W]. A CPU training
// pass with dropout draws the noise of all its dropouts on a second thread
// meanwhile (dropoutNoise); one with lanes splits the batch over them.
func (m *Transformer) runTrunk(in input, sigma *ts.Tensor, ps *pass, cache *KVCache) *ts.Tensor {
	if ps.train && m.cfg.Dropout > 0 && m.cpu && !m.inlineDropout {
		ps.noise = drawDropoutNoise(2*len(m.blocks), in.shape, m.embed.DType(), m.cfg.Dropout)
		defer func() { ps.noise.close(); ps.noise = nil }()
	}
	if k := m.laneCount(in, ps, cache); k > 1 {
		return m.runLanes(k, in, sigma, ps)
	}
	h := in.rows(0, in.shape[0])
	defer h.MustDrop()
	return m.runBlocks(h, ps, cache)
}

// runBlocks runs the blocks on the stream h.
func (m *Transformer) runBlocks(h *ts.Tensor, ps *pass, cache *KVCache) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	for i, b := range m.blocks {
		h = s.T(b.forward(h, ps, cache.layer(i)))
	}
	return s.Keep(h)
}

// input is a pass's input stream [B, l, W] by rows: rows(lo, n) computes
// batch rows lo…lo+n−1, so that a lane computes only its own. grad: the
// input itself carries gradients (embed-and-diffuse's noisy embeddings),
// which lanes do not pass back.
type input struct {
	shape []int64
	rows  func(lo, n int64) *ts.Tensor
	grad  bool
}

// tokens is the token embedding of x [B, l] as an input stream.
func (m *Transformer) tokens(x *ts.Tensor) input {
	return m.inputOf(x, func(x *ts.Tensor) *ts.Tensor { return ts.MustEmbedding(m.embed, x, -1, false, false) })
}

// inputOf is the input stream f(x) for a layer f that acts on each row of
// x [B, l, …] alone.
func (m *Transformer) inputOf(x *ts.Tensor, f func(*ts.Tensor) *ts.Tensor) input {
	size := x.MustSize()
	return input{shape: []int64{size[0], size[1], int64(m.cfg.Width)}, grad: x.MustRequiresGrad(), rows: func(lo, n int64) *ts.Tensor {
		if n == size[0] {
			return f(x)
		}
		part := x.MustNarrow(0, lo, n, false)
		defer part.MustDrop()
		return f(part)
	}}
}

// ForwardRows is Forward's logits at the flat positions rows [M] (int64
// indices into x's B·L) only, [M, VocabOut], for a network without time
// input (MDLM, BD3-LM, AR). The blocks run on all of x; the output layer —
// norm and vocabulary projection, the network's largest matrix when V is
// large — only on the rows asked for. SUBS objectives need logits only
// where x_t is masked (about half the positions in training, fewer and
// fewer while sampling), so this is the same loss and gradients for less
// work and a [M, V] logits buffer instead of [B, L, V].
func (m *Transformer) ForwardRows(x, rows *ts.Tensor, train bool) *ts.Tensor {
	h := m.HiddenRows(x, rows, train)
	defer h.MustDrop()
	return m.output.proj.forward(h)
}

// HiddenRows is the output layer's input to its vocabulary projection at
// the flat positions rows [M] — the final hidden states after the output
// norm, [M, Width] — for a network without time input: logits =
// HiddenRows·Wᵀ + b with (W, b) = Projection(). A loss that never
// materialises all the logits (chunked cross-entropy) starts here.
func (m *Transformer) HiddenRows(x, rows *ts.Tensor, train bool) *ts.Tensor {
	if m.time != nil || m.spec.EmbedDim > 0 {
		panic("models: HiddenRows is for networks without time input over token ids")
	}
	s := torchx.NewScope()
	defer s.Close()
	ps := &pass{rope: m.rope, train: train}
	m.attend(s, ps, m.checkInputs(x, nil, 0, false), x.MustDevice())
	h := s.T(m.runTrunk(m.tokens(x), nil, ps, nil))
	flat := s.T(h.MustFlatten(0, 1, false))
	return m.output.norm.forward(s.T(flat.MustIndexSelect(0, rows, false)))
}

// Projection is the output layer's vocabulary projection, weight
// [VocabOut, Width] and bias [VocabOut] (the model's own tensors).
func (m *Transformer) Projection() (weight, bias *ts.Tensor) {
	return m.output.proj.w, m.output.proj.b
}

// pass is what every block of one forward pass shares.
type pass struct {
	cond   *ts.Tensor // time features [B, cond_dim], nil without time conditioning
	rope   rotary
	offset int        // position of the first token (cached tokens before it)
	from   int        // first cached position attended to (0: all)
	filled int        // cached positions end here at least (a dual cache's suffix)
	mask   *ts.Tensor // additive mask [l, offset+l] (causal or block diffusion); nil: none
	causal bool       // mask is the causal one
	halves bool       // x_t ⊕ x_0: each half at positions offset…offset+l/2−1
	train  bool
	noise  *dropoutNoise // the dropouts' noise, drawn ahead (CPU training); nil: ts.MustDropout
	site   int           // the next dropout site
	lane   rowRange      // a lane's rows of the batch (n = 0: all)
}

// BlockDiffMask is BD3-LM's additive attention mask [2L, 2L] over
// x_t ⊕ x_0 with blocks of b tokens (block(i) = (i mod L)/b): 0 where
// query q may see key k, −inf elsewhere. q sees k when
//
//	both noisy, same block            (a noisy block is denoised as a whole)
//	q noisy, k clean, earlier block   (conditioned on the clean prefix)
//	both clean, k's block ≤ q's       (the clean copy is block-causal)
//
// so p(x_t block j | …) depends on x_0 only through blocks < j, which is
// what makes the likelihood factorise over blocks.
func BlockDiffMask(L, b int, device gotch.Device) *ts.Tensor {
	n := 2 * L
	vals := make([]float32, n*n)
	inf := float32(math.Inf(-1))
	for q := range n {
		for k := range n {
			qClean, kClean := q >= L, k >= L
			bq, bk := (q%L)/b, (k%L)/b
			ok := (bq == bk && qClean == kClean) || (!qClean && kClean && bk < bq) || (qClean && kClean && bk <= bq)
			if !ok {
				vals[q*n+k] = inf
			}
		}
	}
	return ts.MustOfSlice(vals).MustView([]int64{int64(n), int64(n)}, true).MustTo(device, true)
}

// causalMask is 0 where query i (at position offset+i) may see key j and
// −inf where j > offset+i.
func causalMask(l, offset int, device gotch.Device) *ts.Tensor {
	full := ts.MustFull([]int64{int64(l), int64(offset + l)}, ts.FloatScalar(math.Inf(-1)), gotch.Float, device)
	return full.MustTriu(int64(offset+1), true)
}

// checkInputs panics on inputs that break Forward's contract (programming
// errors, not data errors) and returns the sequence length.
func (m *Transformer) checkInputs(x, sigma *ts.Tensor, offset int, blockCached bool) int {
	size := x.MustSize()
	if len(size) != 2 || x.DType() != gotch.Int64 {
		panic(fmt.Sprintf("models: x must be int64 [B, L], got %v %v", x.DType(), size))
	}
	l := int(size[1])
	if b := m.spec.BlockSize; b > 0 && !blockCached {
		if offset != 0 || l%2 != 0 || (l/2)%b != 0 {
			panic(fmt.Sprintf("models: a BD3-LM network takes x_t ⊕ x_0 with L a multiple of block size %d and no cache, got length %d (offset %d)", b, l, offset))
		}
		l /= 2 // positions
	}
	if offset+l > m.cfg.MaxLen {
		panic(fmt.Sprintf("models: positions up to %d exceed model.max_len %d", offset+l, m.cfg.MaxLen))
	}
	switch {
	case m.spec.TimeCond && sigma == nil:
		panic("models: a time-conditioned model needs sigma")
	case !m.spec.TimeCond && sigma != nil:
		panic("models: sigma given to a model without time conditioning")
	case sigma != nil:
		if s := sigma.MustSize(); len(s) != 1 || s[0] != size[0] || sigma.DType() != gotch.Float {
			panic(fmt.Sprintf("models: sigma must be float32 [%d], got %v %v", size[0], sigma.DType(), s))
		}
	}
	return int(size[1])
}

// outputLayer is the final norm (adaLN-modulated with time conditioning)
// and the untied projection to logits.
type outputLayer struct {
	norm layerNorm
	ada  *linear // cond → shift, scale; zero at init; nil without time conditioning
	proj linear
}

func (ps *params) newOutputLayer(p *nn.Path, cfg Config, spec Spec) outputLayer {
	o := outputLayer{
		norm: ps.newLayerNorm(p.Sub("norm"), cfg.Width),
		proj: ps.newLinear(p.Sub("proj"), cfg.Width, spec.VocabOut, 0.02, true),
	}
	if spec.TimeCond {
		ada := ps.newLinear(p.Sub("ada"), cfg.CondDim, 2*cfg.Width, 0, true)
		o.ada = &ada
	}
	return o
}

func (o outputLayer) forward(h, cond *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	var mod *modulation
	if o.ada != nil {
		mod = &modulations(s, *o.ada, cond, 1, false)[0]
	}
	return o.proj.forward(s.T(mod.apply(o.norm.forward(h))))
}
