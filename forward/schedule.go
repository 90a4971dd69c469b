package forward

import "math"

// Schedule maps time t ∈ [0,1] to the cumulative noise σ(t) of the forward
// process. Every process here is a continuous-time Markov chain with a fixed
// rate matrix R, so its marginal at time t is exp(σ(t)·R): the schedule is
// the only thing that depends on t, and α(t) = e^{−σ(t)} is the probability
// that a token has not been touched yet (absorbing, uniform).
type Schedule interface {
	// Alpha is α(t) = e^{−σ(t)}.
	Alpha(t float64) float64
	// Sigma is σ(t) = −log α(t).
	Sigma(t float64) float64
	// DSigma is dσ/dt, exact.
	DSigma(t float64) float64
}

// LogLinear is MDLM's and SEDD's default: α(t) = 1 − (1−ε)t, so the
// expected fraction of noised tokens grows linearly in t and α(1) = ε.
type LogLinear struct{ Eps float64 }

func (s LogLinear) Alpha(t float64) float64 { return 1 - (1-s.Eps)*t }

// Sigma uses log1p so that σ stays accurate (and exactly 0) near t = 0.
func (s LogLinear) Sigma(t float64) float64 { return -math.Log1p(-(1 - s.Eps) * t) }

func (s LogLinear) DSigma(t float64) float64 { return (1 - s.Eps) / (1 - (1-s.Eps)*t) }

// Cosine is α(t) = ε + (1−ε)·cos(πt/2): slow noising at first, fast at the end.
type Cosine struct{ Eps float64 }

func (s Cosine) Alpha(t float64) float64 { return s.Eps + (1-s.Eps)*math.Cos(math.Pi*t/2) }

func (s Cosine) Sigma(t float64) float64 { return -math.Log(s.Alpha(t)) }

// DSigma is −α'/α with α' = −(1−ε)(π/2)·sin(πt/2).
func (s Cosine) DSigma(t float64) float64 {
	return (1 - s.Eps) * math.Pi / 2 * math.Sin(math.Pi*t/2) / s.Alpha(t)
}

// Geometric is SEDD's schedule for the uniform process:
// σ(t) = σ_min^{1−t}·σ_max^t. Note α(0) = e^{−σ_min} < 1: the continuous-time
// bounds start from a process that has already noised a σ_min fraction of
// tokens and omit that reconstruction term, as SEDD does; the discrete-time
// (D3PM) bound does not, because its chain always starts at σ = 0.
type Geometric struct{ SigmaMin, SigmaMax float64 }

func (s Geometric) Alpha(t float64) float64 { return math.Exp(-s.Sigma(t)) }

func (s Geometric) Sigma(t float64) float64 {
	return math.Pow(s.SigmaMin, 1-t) * math.Pow(s.SigmaMax, t)
}

func (s Geometric) DSigma(t float64) float64 {
	return s.Sigma(t) * math.Log(s.SigmaMax/s.SigmaMin)
}

// SigmaForFraction is the noise level at which a fraction frac of the
// positions is expected to be noised, 1 − α = frac, so σ = −log(1 − frac),
// capped at σ(1) (the schedule never noises more than 1 − α(1)). Samplers
// and fillers that choose how many positions stay masked themselves pass
// this σ to time-conditioned networks, so that the time input agrees with
// the mask fraction the network sees.
func SigmaForFraction(s Schedule, frac float64) float64 {
	top := s.Sigma(1)
	if frac >= 1 {
		return top
	}
	return min(-math.Log1p(-max(frac, 0)), top)
}
