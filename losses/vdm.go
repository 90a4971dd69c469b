package losses

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

// ContinuousNet is an embed-and-diffuse network (models.Transformer with
// Spec.EmbedDim): its normalised token embeddings e [V, d] and x̂0 [B,L,d]
// from noisy points z [B,L,d] at noise levels [B] (float32, γ(t)).
type ContinuousNet interface {
	Net
	Embeddings() *ts.Tensor
	ForwardEmbeds(z, level *ts.Tensor, train bool) *ts.Tensor
}

// vdm is the continuous-time variational bound of VDM (Kingma et al.,
// 2021) for the Gaussian process on token embeddings (forward.Gaussian),
// with Plaid's categorical decoder. Per token x with embedding e = e(x),
// and SNR(t) = e^{−γ(t)},
//
//	−log p(x) ≤ KL(q(z_1|e) ‖ N(0, I))                                  prior
//	          + ½·E_{t~U[0,1]} [ γ'(t)·e^{−γ(t)}·‖e − x̂0(z_t, t)‖² ]        diffusion
//	          + E_{z_0~q(z_0|e)} [ −log p(x | z_0) ]                      reconstruction
//
// with KL = ½·Σ_d (σ_1² + α_1²·e_d² − 1 − log σ_1²), z_t = α_t·e + σ_t·ε,
// and the decoder p(x = v | z_0) = softmax_v(−‖z_0 − α_0·e_v‖² / (2σ_0²)),
// the exact posterior of v under a uniform prior over the vocabulary. The
// network sees all positions' z_t and γ(t) (one t per sequence) and
// predicts the noise, as VDM and Plaid do: x̂0 = (z_t − σ_t·ε̂)/α_t (X0), so
// e^{−γ}‖e − x̂0‖² = ‖ε − ε̂‖² and the diffusion term is ½·E[γ'(t)·‖ε − ε̂‖²]
// — bounded where SNR is large, which an x̂0-predicting network, having
// to learn the identity to within σ_t, is not. The embeddings are learned
// through all three terms. Bounds are in nats per token like every other
// objective's.
//
// loss simple is Diffusion-LM's training loss instead (evaluation keeps the
// bound): ‖e − x̂0‖² unweighted in t, plus ‖α_1·e‖² (the prior's mean
// term) and the same reconstruction (their rounding loss).
type vdm struct {
	base
	g      forward.Gaussian
	v      int
	simple bool
}

// NewVDM builds the vdm objective over V tokens for the gaussian process g.
func NewVDM(cfg Config, g forward.Gaussian, V int) (Objective, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name != "vdm" {
		return nil, fmt.Errorf("objective.name: NewVDM builds vdm, got %s", cfg.Name)
	}
	if g.Dim < 1 || !(g.GammaMin < g.GammaMax) {
		return nil, fmt.Errorf("process: gaussian with dimension %d and log-SNR range [%v, %v]", g.Dim, g.GammaMin, g.GammaMax)
	}
	spec := NetSpec{VocabIn: V, VocabOut: g.Dim, TimeCond: true, EmbedDim: g.Dim}
	d := &vdm{base: base{name: "vdm", spec: spec, antithetic: cfg.TSampling == "antithetic"}, g: g, v: V, simple: cfg.VDMLoss == "simple"}
	d.m = d
	return d, nil
}

// Gaussian is the process the objective was built for (the ddpm sampler
// walks it backwards).
func (d *vdm) Gaussian() forward.Gaussian { return d.g }

func (d *vdm) times(u []float64) []float64 { return u }

// PriorPerToken is the prior term KL(q(z_1|e) ‖ N(0, I)) of one token:
// with ‖e‖² = d (the normalised embeddings) and α² + σ² = 1 it is
// ½·d·(σ_1² + α_1² − 1 − log σ_1²) = −½·d·log σ_1², whatever the token.
func (d *vdm) PriorPerToken() float64 {
	s1 := d.g.Sigma2(1)
	return 0.5 * float64(d.g.Dim) * (s1 + d.g.Alpha2(1) - 1 - math.Log(s1))
}

// noise is the identity: z_t needs the embeddings, which belong to the
// network, so terms draws it.
func (d *vdm) noise(x0 *ts.Tensor, t []float64, _ bool) *ts.Tensor { return x0.MustShallowClone() }

// vdmParts are the three per-token terms of the bound [B, L], and
// Diffusion-LM's training loss.
type vdmParts struct{ prior, diffusion, recon, simple *ts.Tensor }

func (p vdmParts) drop() {
	for _, t := range []*ts.Tensor{p.prior, p.diffusion, p.recon, p.simple} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// perSeq3 is one value per sequence as [B,1,1].
func perSeq3(vals []float64, dtype gotch.DType, dev gotch.Device) *ts.Tensor {
	return ts.MustOfSlice(vals).MustView([]int64{int64(len(vals)), 1, 1}, true).MustTotype(dtype, true).MustTo(dev, true)
}

// parts computes the terms at times t (one per sequence), drawing ε for
// z_t and z_0 from torch's generator.
func (d *vdm) parts(net ContinuousNet, x0 *ts.Tensor, t []float64, train bool) vdmParts {
	s := torchx.NewScope()
	defer s.Close()
	size := x0.MustSize()
	B := size[0]
	emb := s.T(net.Embeddings())
	dev, dtype := emb.MustDevice(), emb.DType()
	e := s.T(ts.MustEmbedding(emb, x0, -1, false, false)) // [B, L, d]
	alpha, sigma, gammas, weight := make([]float64, B), make([]float64, B), make([]float64, B), make([]float64, B)
	for b, tb := range t {
		alpha[b], sigma[b] = math.Sqrt(d.g.Alpha2(tb)), math.Sqrt(d.g.Sigma2(tb))
		gammas[b] = d.g.Gamma(tb)
		weight[b] = 0.5 * d.g.DGamma(tb)
	}
	eps := s.T(ts.MustRandn(e.MustSize(), dtype, dev))
	zt := s.T(s.T(e.MustMul(s.T(perSeq3(alpha, dtype, dev)), false)).MustAdd(s.T(eps.MustMul(s.T(perSeq3(sigma, dtype, dev)), false)), false))
	level := s.T(ts.MustOfSlice(gammas).MustTotype(gotch.Float, true).MustTo(dev, true))
	epsHat := s.T(net.ForwardEmbeds(zt, level, train))
	epsErr := s.T(s.T(s.T(eps.MustSub(epsHat, false)).MustSquare(false)).MustSumDimIntlist([]int64{-1}, false, dtype, false))
	var p vdmParts
	p.diffusion = epsErr.MustMul(s.T(perSeq(weight, dtype, dev)), false)

	a1, s1 := d.g.Alpha2(1), d.g.Sigma2(1)
	e2 := s.T(s.T(e.MustSquare(false)).MustSumDimIntlist([]int64{-1}, false, dtype, false))
	dim := float64(d.g.Dim)
	p.prior = s.T(e2.MustMulScalar(ts.FloatScalar(0.5*a1), false)).MustAddScalar(ts.FloatScalar(0.5*dim*(s1-1-math.Log(s1))), false)

	a0, s0 := math.Sqrt(d.g.Alpha2(0)), d.g.Sigma2(0)
	eps0 := s.T(ts.MustRandn(e.MustSize(), dtype, dev))
	z0 := s.T(s.T(e.MustMulScalar(ts.FloatScalar(a0), false)).MustAdd(s.T(eps0.MustMulScalar(ts.FloatScalar(math.Sqrt(s0)), false)), false))
	p.recon = nll(s.T(decoderLogits(z0, emb, a0, s0)), x0)
	if d.simple {
		// ‖e − x̂0‖² = (σ_t/α_t)²·‖ε − ε̂‖².
		ratio := make([]float64, B)
		for b := range ratio {
			ratio[b] = sigma[b] * sigma[b] / (alpha[b] * alpha[b])
		}
		mse := s.T(epsErr.MustMul(s.T(perSeq(ratio, dtype, dev)), false))
		p.simple = s.T(mse.MustAdd(s.T(e2.MustMulScalar(ts.FloatScalar(a1), false)), false)).MustAdd(p.recon, false)
	}
	return p
}

// X0 is x̂0 = (z − σ_t·ε̂(z, t))/α_t for points z [B,L,d] at time t, in
// z's dtype: what the ddpm sampler steps with. The network call is not
// counted here.
func (d *vdm) X0(net ContinuousNet, z *ts.Tensor, t float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	b := z.MustSize()[0]
	level := s.T(ts.MustFull([]int64{b}, ts.FloatScalar(d.g.Gamma(t)), gotch.Float, z.MustDevice()))
	var epsHat *ts.Tensor
	torchx.NoGrad(func() { epsHat = s.T(net.ForwardEmbeds(s.T(z.MustTotype(gotch.Float, false)), level, false)) })
	a, sg := math.Sqrt(d.g.Alpha2(t)), math.Sqrt(d.g.Sigma2(t))
	noise := s.T(s.T(epsHat.MustTotype(z.DType(), false)).MustMulScalar(ts.FloatScalar(sg), false))
	return s.T(z.MustSub(noise, false)).MustDivScalar(ts.FloatScalar(a), false)
}

// decoderLogits are log p(x = v | z_0) up to a constant per position:
// −‖z_0 − α_0·e_v‖²/(2σ_0²) = (α_0·z_0·e_v − ½·α_0²·‖e_v‖²)/σ_0² + const,
// for z [B, L, d] and e [V, d]: [B, L, V].
func decoderLogits(z, emb *ts.Tensor, a0, s0 float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	dot := s.T(z.MustMatmul(s.T(emb.MustT(false)), false))
	norms := s.T(s.T(s.T(emb.MustSquare(false)).MustSumDimIntlist([]int64{-1}, false, emb.DType(), false)).MustMulScalar(ts.FloatScalar(0.5*a0*a0), false))
	return s.T(dot.MustMulScalar(ts.FloatScalar(a0), false)).MustSub(norms, false).MustDivScalar(ts.FloatScalar(s0), true)
}

func (d *vdm) terms(net Net, x0, _, _ *ts.Tensor, t []float64, train bool) (terms, error) {
	cn, ok := net.(ContinuousNet)
	if !ok {
		return terms{}, fmt.Errorf("objective vdm needs an embed-and-diffuse network (model with Spec.EmbedDim), got %T", net)
	}
	p := d.parts(cn, x0, t, train)
	s := torchx.NewScope()
	defer s.Close()
	defer p.drop()
	bound := s.T(p.prior.MustAdd(p.diffusion, false)).MustAdd(p.recon, false)
	tr := terms{bound: bound, prior: p.prior.MustDetach(false)}
	if p.simple != nil {
		tr.train = p.simple.MustShallowClone()
	}
	return tr, nil
}

// Term names of TermTotals, as the results record them (nats per token).
const (
	TermPrior     = "prior"
	TermDiffusion = "diffusion"
	TermRecon     = "recon"
)

// TermTotals is each term of the bound summed over the weighted tokens of
// x0 at the draws u (one per sequence), and the weight total: the
// breakdown a report prints beside the bound, the reconstruction term
// (rounding points back to tokens) apart.
func (d *vdm) TermTotals(net Net, x0, weights *ts.Tensor, u []float64) (map[string]float64, float64, error) {
	cn, ok := net.(ContinuousNet)
	if !ok {
		return nil, 0, fmt.Errorf("objective vdm needs an embed-and-diffuse network, got %T", net)
	}
	if err := checkBatch(x0, weights); err != nil {
		return nil, 0, fmt.Errorf("vdm terms: %w", err)
	}
	out := map[string]float64{}
	var tokens float64
	torchx.NoGrad(func() {
		s := torchx.NewScope()
		defer s.Close()
		p := d.parts(cn, x0, u, false)
		defer p.drop()
		w := s.T(weightsLike(weights, p.prior))
		out[TermPrior], out[TermDiffusion], out[TermRecon] = total(s, p.prior, w), total(s, p.diffusion, w), total(s, p.recon, w)
		tokens = total(s, w, nil)
	})
	return out, tokens, nil
}
