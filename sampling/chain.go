package sampling

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// chain is the state of one batch while a sampler runs: the current
// sequences, the given tokens that must not move, the reshaping of p̃, the
// model-call count and the filmstrip hook.
type chain struct {
	b, l     int64
	steps    int
	x        *ts.Tensor // [B,L] int64, owned
	fixed    []bool     // the template's given flags, nil when nothing is given
	given    *ts.Tensor // [B,L] bool, nil when nothing is given
	tokens   *ts.Tensor // [B,L] int64 given tokens (pending id elsewhere)
	pending  int64      // id of undecided positions: the mask, or V
	temp     float64
	topP     float64
	topPRule string
	device   gotch.Device
	calls    int
	tick     func()                        // after every network call (a progress bar); nil for none
	watch    func(x *ts.Tensor, calls int) // sees the start and every step; nil when not recording
}

// newChain prepares a batch of b sequences for req. Its x starts as all
// pending; samplers call start with their initial state.
func newChain(b int, req Request, device gotch.Device, pending int) *chain {
	c := &chain{b: int64(b), l: int64(req.Len), steps: req.Steps, pending: int64(pending),
		temp: req.Temperature, topP: req.TopP, topPRule: req.TopPRule, device: device}
	c.x = ts.MustFull([]int64{c.b, c.l}, ts.IntScalar(c.pending), gotch.Int64, device)
	if t := req.Template; t.NumGiven() > 0 {
		c.fixed = t.Given
		c.given, c.tokens = t.tensors(b, int(c.pending), device)
	}
	return c
}

// start sets the initial state x0 (taking ownership), clamps it and shows
// it to the recorder.
func (c *chain) start(x0 *ts.Tensor) { c.set(x0) }

// set replaces the state by x (taking ownership), puts the given tokens
// back, and shows the result to the recorder.
func (c *chain) set(x *ts.Tensor) {
	if c.given != nil {
		clamped := c.tokens.MustWhereSelf(c.given, x, false)
		x.MustDrop()
		x = clamped
	}
	c.x.MustDrop()
	c.x = x
	if c.watch != nil {
		c.watch(c.x, c.calls)
	}
}

// isGiven reports whether position i is given.
func (c *chain) isGiven(i int) bool { return c.fixed != nil && c.fixed[i] }

// free is true where the sampler may change a position: [B,L] bool.
func (c *chain) free() *ts.Tensor {
	if c.given == nil {
		return ts.MustOnes([]int64{c.b, c.l}, gotch.Bool, c.device)
	}
	return c.given.MustLogicalNot(false)
}

// adjust applies the request's temperature and top-p to probabilities
// [..., K] (float64).
func (c *chain) adjust(p *ts.Tensor) *ts.Tensor { return reshape(p, c.temp, c.topP, c.topPRule) }

// perSeq repeats one noise level for every sequence of the batch, as
// forward's functions take it.
func (c *chain) perSeq(v float64) []float64 {
	out := make([]float64, c.b)
	for i := range out {
		out[i] = v
	}
	return out
}

func (c *chain) close() {
	for _, t := range []*ts.Tensor{c.x, c.given, c.tokens} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// cleanAt is p̃(x0|x_t) at the flat positions idx, [1,M,V] in float64,
// from the objective's log-probabilities logp [B,L,V].
func cleanAt(logp, idx *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	return s.T(s.T(pick(logp, idx)).MustTotype(gotch.Double, false)).MustExp(false)
}

// model is the network as the objectives call it on this chain: without
// gradients, each call counted.
func (c *chain) model(m losses.Net) losses.Net { return counted{m: m, c: c} }

type counted struct {
	m losses.Net
	c *chain
}

func (n counted) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	n.c.calls++
	if n.c.tick != nil {
		n.c.tick()
	}
	var out *ts.Tensor
	torchx.NoGrad(func() { out = n.m.Forward(x, sigma, false) })
	return out
}

// ForwardRows gives an objective that needs logits at some rows only
// (MDLM's SUBS: the masked positions) the network's own ForwardRows when
// it has one, else the rows of a full pass; counted either way.
func (n counted) ForwardRows(x, rows *ts.Tensor, train bool) *ts.Tensor {
	n.c.calls++
	if n.c.tick != nil {
		n.c.tick()
	}
	var out *ts.Tensor
	torchx.NoGrad(func() {
		if rn, ok := n.m.(interface {
			ForwardRows(x, rows *ts.Tensor, train bool) *ts.Tensor
		}); ok {
			out = rn.ForwardRows(x, rows, false)
			return
		}
		full := n.m.Forward(x, nil, false)
		defer full.MustDrop()
		flat := full.MustFlatten(0, 1, false)
		defer flat.MustDrop()
		out = flat.MustIndexSelect(0, rows, false)
	})
	return out
}

// The samplers compute distributions and draws only at the positions that
// can move (for absorbing, the masked ones; ancestral: those that unmask
// in this step), so that a step costs in proportion to them, not to L·V.

// rows is the flat indices [M] of the positions where sel [B,L] is true,
// nil when there are none.
func rows(sel *ts.Tensor) *ts.Tensor {
	nz := sel.MustFlatten(0, -1, false).MustNonzero(true)
	if nz.MustSize()[0] == 0 {
		nz.MustDrop()
		return nil
	}
	return nz.MustSqueezeDim(1, true)
}

// pick is t [B,L,...] at the flat positions idx: [1,M,...].
func pick(t, idx *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	flat := s.T(t.MustFlatten(0, 1, false))
	return s.T(flat.MustIndexSelect(0, idx, false)).MustUnsqueeze(0, false)
}

// put is a copy of x [B,L] with vals [1,M] written at the flat positions
// idx.
func put(x, idx, vals *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	flat := s.T(x.MustFlatten(0, -1, false))
	return s.T(flat.MustIndexCopy(0, idx, s.T(vals.MustFlatten(0, -1, false)), false)).MustView(x.MustSize(), false)
}
