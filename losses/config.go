package losses

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Config is the `objective:` section of a run configuration.
type Config struct {
	// Name is mdlm|d3pm|sedd|bd3lm|vdm|ar.
	Name string `mapstructure:"name"`
	// Steps is T of the discrete-time bounds: d3pm needs T ≥ 1, mdlm
	// takes T ≥ 1 for its finite-T form or 0 for continuous time, sedd
	// and ar take only 0.
	Steps int `mapstructure:"steps"`
	// HybridLambda is λ of D3PM's hybrid loss L_vb + λ·CE (d3pm only).
	HybridLambda float64 `mapstructure:"hybrid_lambda"`
	// D3PMForm is proportional (D3PM's p_θ ∝ Q_t[·,x_t] ⊙ p̃·Q̄_s) or
	// mixture (Σ_v p̃(v)·q(x_s|x_t,v)); see forward.Form.
	D3PMForm string `mapstructure:"d3pm_form"`
	// TSampling is how Loss draws one time per sequence: uniform (i.i.d.)
	// or antithetic (t_b = (u + b/B) mod 1, one u per batch: a
	// low-discrepancy draw with lower variance).
	TSampling string `mapstructure:"t_sampling"`
	// BlockSize is b of bd3lm: the sequence is denoised in blocks of b
	// tokens, each conditioned on the clean blocks before it (L must be a
	// multiple of b; b = L is MDLM, b = 1 an autoregressive model).
	BlockSize int `mapstructure:"block_size"`
	// ClipMin and ClipMax are BD3-LM's clipped schedule: training draws
	// t ~ U[clip_min, clip_max] (β, ω) instead of U[0, 1], which lowers
	// the loss's variance (the paper tunes the window per block size);
	// evaluation always integrates over [0, 1], so bounds stay bounds.
	// Both 0 (a Config literal's zero value) is the same as [0, 1].
	ClipMin float64 `mapstructure:"clip_min"`
	ClipMax float64 `mapstructure:"clip_max"`
	// VDMLoss is what vdm trains on: elbo (VDM's bound, the default) or
	// simple (Diffusion-LM's ‖e − x̂0‖² + prior mean + rounding loss);
	// its evaluation is the bound either way.
	VDMLoss string `mapstructure:"vdm_loss"`
	// CEChunk > 0 computes the cross-entropy of mdlm, bd3lm and ar
	// CEChunk rows at a time, in training and evaluation, never holding
	// more than [CEChunk, V] logits (chunkedCE): the same loss, gradients
	// and bounds, for a vocabulary whose logits would not fit (GPT-2's:
	// 6.6 GB fp32 per 32 × 1024 micro-batch). 0 (the default) computes
	// the whole [rows, V] head.
	CEChunk int `mapstructure:"ce_chunk"`
}

// DefaultConfig is MDLM in continuous time.
func DefaultConfig() Config {
	return Config{Name: "mdlm", HybridLambda: 0.01, D3PMForm: "proportional", TSampling: "antithetic", BlockSize: 16, ClipMax: 1, VDMLoss: "elbo"}
}

var (
	objectiveNames = []string{"mdlm", "d3pm", "sedd", "bd3lm", "vdm", "ar"}
	processNames   = []string{"absorbing", "uniform", "embedding", "gaussian", "none"}
	d3pmForms      = []string{"proportional", "mixture"}
	tSamplings     = []string{"uniform", "antithetic"}
)

// Validate checks every key and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("objective.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	oneOf := func(key, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			bad(key, "%q is not one of %s", v, strings.Join(allowed, "|"))
		}
	}
	oneOf("name", c.Name, objectiveNames)
	switch {
	case c.Steps < 0:
		bad("steps", "%d is negative", c.Steps)
	case c.Name == "d3pm" && c.Steps == 0:
		bad("steps", "d3pm is discrete-time and needs steps ≥ 1, got 0")
	case c.Name == "sedd" && c.Steps != 0:
		bad("steps", "sedd is continuous-time only (steps: 0), got %d", c.Steps)
	case c.Name == "ar" && c.Steps != 0:
		bad("steps", "ar has no diffusion steps (steps: 0), got %d", c.Steps)
	case c.Name == "bd3lm" && c.Steps != 0:
		bad("steps", "bd3lm is continuous-time only (steps: 0), got %d", c.Steps)
	case c.Name == "vdm" && c.Steps != 0:
		bad("steps", "vdm is continuous-time only (steps: 0), got %d", c.Steps)
	}
	if c.VDMLoss != "elbo" && c.VDMLoss != "simple" && !(c.VDMLoss == "" && c.Name != "vdm") {
		bad("vdm_loss", "%q is not one of elbo|simple", c.VDMLoss)
	}
	if c.Name == "bd3lm" && c.BlockSize < 1 {
		bad("block_size", "%d: bd3lm needs blocks of at least 1 token", c.BlockSize)
	}
	if c.ClipMin == 0 && c.ClipMax == 0 {
		// The zero value (a Config literal) means no window.
	} else if !(c.ClipMin >= 0 && c.ClipMin < c.ClipMax && c.ClipMax <= 1) {
		bad("clip_min", "[%v, %v] is not a window 0 ≤ clip_min < clip_max ≤ 1", c.ClipMin, c.ClipMax)
	} else if c.Name != "bd3lm" && (c.ClipMin != 0 || c.ClipMax != 1) {
		bad("clip_min", "the clipped schedule [%v, %v] is bd3lm's (objective.name: bd3lm), got %s", c.ClipMin, c.ClipMax, c.Name)
	}
	if !(c.HybridLambda >= 0) || math.IsInf(c.HybridLambda, 1) {
		bad("hybrid_lambda", "%v must be a finite number ≥ 0", c.HybridLambda)
	}
	switch {
	case c.CEChunk < 0:
		bad("ce_chunk", "%d is negative (0: no chunking)", c.CEChunk)
	case c.CEChunk > 0 && c.Name != "mdlm" && c.Name != "bd3lm" && c.Name != "ar":
		bad("ce_chunk", "chunked cross-entropy is for mdlm|bd3lm|ar (a softmax over the clean tokens), got %s", c.Name)
	}
	oneOf("d3pm_form", c.D3PMForm, d3pmForms)
	oneOf("t_sampling", c.TSampling, tSamplings)
	return errors.Join(errs...)
}

// ValidatePair says whether objective objectiveName is defined for
// process processName (a process.name value, "none" for no process). The
// config loader calls it before anything is built.
func ValidatePair(processName, objectiveName string) error {
	if !slices.Contains(processNames, processName) {
		return fmt.Errorf("process.name: %q is not one of %s", processName, strings.Join(processNames, "|"))
	}
	switch objectiveName {
	case "mdlm", "bd3lm":
		if processName != "absorbing" {
			return fmt.Errorf("objective.name: %s needs process.name: absorbing, got %s", objectiveName, processName)
		}
	case "d3pm", "sedd":
		if processName == "none" || processName == "gaussian" {
			return fmt.Errorf("objective.name: %s needs a discrete process (process.name: absorbing|uniform|embedding), got %s", objectiveName, processName)
		}
	case "vdm":
		if processName != "gaussian" {
			return fmt.Errorf("objective.name: vdm needs process.name: gaussian, got %s", processName)
		}
	case "ar":
		if processName != "none" {
			return fmt.Errorf("objective.name: ar takes no process (process.name: none), got %s", processName)
		}
	default:
		return fmt.Errorf("objective.name: %q is not one of %s", objectiveName, strings.Join(objectiveNames, "|"))
	}
	return nil
}

// SpecFor is the network an (objective, process) pair needs over V real
// tokens. mdlm and bd3lm: input V+1 (mask), output V (SUBS: no mask logit); d3pm:
// input N states, output V clean tokens, time input; sedd: input and output
// N (a log-score per state), time input; ar: input V+1 (BOS = V), output V,
// causal.
func SpecFor(processName, objectiveName string, V int) (NetSpec, error) {
	if err := ValidatePair(processName, objectiveName); err != nil {
		return NetSpec{}, err
	}
	n := V
	if processName == "absorbing" {
		n = V + 1
	}
	switch objectiveName {
	case "mdlm", "bd3lm": // bd3lm's block size is set by New
		return NetSpec{VocabIn: V + 1, VocabOut: V}, nil
	case "d3pm":
		return NetSpec{VocabIn: n, VocabOut: V, TimeCond: true}, nil
	case "sedd":
		return NetSpec{VocabIn: n, VocabOut: n, TimeCond: true}, nil
	case "vdm":
		return NetSpec{}, fmt.Errorf("objective vdm's network depends on process.embed_dim: see NewVDM")
	}
	return NetSpec{VocabIn: V + 1, VocabOut: V, Causal: true}, nil
}
