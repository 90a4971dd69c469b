package sampling

import (
	"context"
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// ddpm is ancestral sampling in embedding space for embed-and-diffuse
// networks (objective vdm; Diffusion-LM, Plaid). From z_1 ~ N(0, I) it
// steps t = i/T → s = (i−1)/T by the Gaussian posterior of the forward
// process given the network's x̂0 = x̂0(z_t, t):
//
//	z_s ~ N(μ, v·I),  μ = (α_{t|s}σ_s²/σ_t²)·z_t + (α_s σ_{t|s}²/σ_t²)·x̂0,
//	v = σ_{t|s}²σ_s²/σ_t²,  α_{t|s} = α_t/α_s,  σ_{t|s}² = σ_t² − α_{t|s}²σ_s²,
//
// and ends with a draw from the categorical decoder p(x | z_0) (under the
// request's temperature and top-p). With clamp (Diffusion-LM's clamping
// trick) x̂0 is replaced by its nearest token embedding at every step.
// Given positions (a prompt, an infilling frame) have x̂0 set to their
// token's embedding, so the chain is pulled to them, and keep their token.
// The filmstrip shows each step's nearest tokens of x̂0: text sharpening
// out of noise rather than unmasking.
type ddpm struct {
	net   losses.ContinuousNet
	obj   continuousObjective
	g     forward.Gaussian
	clamp bool
}

// continuousObjective is what the sampler reads of vdm: its process and
// x̂0 from the network's output.
type continuousObjective interface {
	Gaussian() forward.Gaussian
	X0(net losses.ContinuousNet, z *ts.Tensor, t float64) *ts.Tensor
}

func newDDPM(cfg Config, net Net) (loop, error) {
	cn, ok := net.Model.(losses.ContinuousNet)
	obj, gok := net.Objective.(continuousObjective)
	if !ok || !gok {
		return nil, fmt.Errorf("sampler \"ddpm\" needs an embed-and-diffuse network (objective vdm, process gaussian), got objective %s", net.Objective.Name())
	}
	return &ddpm{net: cn, obj: obj, g: obj.Gaussian(), clamp: cfg.Clamp}, nil
}

func (d *ddpm) sample(ctx context.Context, c *chain) error {
	s := torchx.NewScope()
	defer s.Close()
	emb := s.T(d.net.Embeddings())
	emb = s.T(emb.MustTotype(gotch.Double, false))
	dim := emb.MustSize()[1]
	z := s.Keep(ts.MustRandn([]int64{c.b, c.l, dim}, gotch.Double, c.device))
	defer func() { z.MustDrop() }()
	var givenEmb, given3 *ts.Tensor
	if c.given != nil {
		ids := s.T(c.tokens.MustClampMax(ts.IntScalar(emb.MustSize()[0]-1), false))
		givenEmb = s.T(ts.MustEmbedding(emb, ids, -1, false, false))
		given3 = s.T(c.given.MustUnsqueeze(-1, false))
	}
	c.start(c.x.MustAddScalar(ts.IntScalar(0), false))
	for i := c.steps; i >= 1; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		t, sT := float64(i)/float64(c.steps), float64(i-1)/float64(c.steps)
		xhat := d.denoise(c, z, t)
		if d.clamp {
			near := nearest(xhat, emb)
			next := ts.MustEmbedding(emb, near, -1, false, false)
			near.MustDrop()
			xhat.MustDrop()
			xhat = next
		}
		if givenEmb != nil {
			pinned := givenEmb.MustWhereSelf(given3, xhat, false)
			xhat.MustDrop()
			xhat = pinned
		}
		c.set(nearest(xhat, emb))
		next := d.step(z, xhat, t, sT)
		xhat.MustDrop()
		z.MustDrop()
		z = next
	}
	// The decoder at z_0: p(x = v | z_0) ∝ exp((α₀ z·e_v − ½α₀²‖e_v‖²)/σ₀²).
	a0, s0 := math.Sqrt(d.g.Alpha2(0)), d.g.Sigma2(0)
	dot := s.T(z.MustMatmul(s.T(emb.MustT(false)), false))
	norms := s.T(s.T(s.T(emb.MustSquare(false)).MustSumDimIntlist([]int64{-1}, false, gotch.Double, false)).MustMulScalar(ts.FloatScalar(0.5*a0*a0), false))
	logits := s.T(s.T(s.T(dot.MustMulScalar(ts.FloatScalar(a0), false)).MustSub(norms, false)).MustDivScalar(ts.FloatScalar(s0), false))
	p := s.T(logits.MustSoftmax(-1, gotch.Double, false))
	c.set(categorical(s.T(c.adjust(p))))
	return nil
}

// denoise is x̂0(z_t, t) (float64, z's dtype), one counted network call.
func (d *ddpm) denoise(c *chain, z *ts.Tensor, t float64) *ts.Tensor {
	c.calls++
	if c.tick != nil {
		c.tick()
	}
	return d.obj.X0(d.net, z, t)
}

// step draws z_s from the forward process's posterior given z_t and x̂0.
func (d *ddpm) step(z, xhat *ts.Tensor, t, s float64) *ts.Tensor {
	sc := torchx.NewScope()
	defer sc.Close()
	at2, st2, as2, ss2 := d.g.Alpha2(t), d.g.Sigma2(t), d.g.Alpha2(s), d.g.Sigma2(s)
	ats := math.Sqrt(at2 / as2) // α_{t|s}
	sts2 := st2 - ats*ats*ss2   // σ_{t|s}²
	cz, cx := ats*ss2/st2, math.Sqrt(as2)*sts2/st2
	mean := sc.T(sc.T(z.MustMulScalar(ts.FloatScalar(cz), false)).MustAdd(sc.T(xhat.MustMulScalar(ts.FloatScalar(cx), false)), false))
	std := math.Sqrt(max(0, sts2*ss2/st2))
	noise := sc.T(ts.MustRandn(z.MustSize(), gotch.Double, z.MustDevice()))
	return mean.MustAdd(sc.T(noise.MustMulScalar(ts.FloatScalar(std), false)), false)
}

// nearest is the token whose embedding is closest to each point [B,L,d]:
// argmax_v (x·e_v − ½‖e_v‖²), [B,L] int64.
func nearest(x, emb *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	dot := s.T(x.MustMatmul(s.T(emb.MustT(false)), false))
	half := s.T(s.T(s.T(emb.MustSquare(false)).MustSumDimIntlist([]int64{-1}, false, emb.DType(), false)).MustMulScalar(ts.FloatScalar(0.5), false))
	return s.T(dot.MustSub(half, false)).MustArgmax([]int64{-1}, false, false)
}
