package forward

import "math"

// Gaussian is the variance-preserving Gaussian process of embed-and-diffuse
// models (Diffusion-LM, Plaid, VDM) on token embeddings e ∈ R^d:
//
//	q(z_t | e) = N(α_t·e, σ_t²·I),  α_t² = sigmoid(−γ(t)),  σ_t² = sigmoid(γ(t)),
//
// with the log-SNR schedule fixed and linear, as VDM's fixed baseline:
// γ(t) = γ_min + (γ_max − γ_min)·t, so SNR(t) = α_t²/σ_t² = e^{−γ(t)} falls
// from e^{−γ_min} (nearly clean) to e^{−γ_max} (nearly pure noise). It is
// not a Process: those are Markov chains over discrete states, this one a
// Gaussian in the embedding space, and only the vdm objective and the ddpm
// sampler use it.
type Gaussian struct {
	Dim                int // d, the embedding dimension
	GammaMin, GammaMax float64
}

// Gamma is γ(t), the negative log-SNR.
func (g Gaussian) Gamma(t float64) float64 { return g.GammaMin + (g.GammaMax-g.GammaMin)*t }

// DGamma is γ'(t).
func (g Gaussian) DGamma(float64) float64 { return g.GammaMax - g.GammaMin }

// Alpha2 is α_t² = sigmoid(−γ(t)).
func (g Gaussian) Alpha2(t float64) float64 { return sigmoid(-g.Gamma(t)) }

// Sigma2 is σ_t² = sigmoid(γ(t)).
func (g Gaussian) Sigma2(t float64) float64 { return sigmoid(g.Gamma(t)) }

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}
