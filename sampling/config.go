package sampling

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Config is the `sampling:` section of a run configuration. Sampler, Steps,
// Temperature, TopP and Samples are the defaults of a Request (see
// Config.Request); the rest shape the samplers New builds.
type Config struct {
	// Sampler is one of Names().
	Sampler string `mapstructure:"sampler"`
	// Steps is T, the number of reverse steps (for block: over all blocks).
	Steps int `mapstructure:"steps"`
	// Temperature scales the clean-token distribution p̃(x0|x_t) (or the
	// next-token distribution of ar) as p^(1/temperature); 0 is greedy.
	Temperature float64 `mapstructure:"temperature"`
	// TopP keeps the smallest set of tokens holding this much of p̃
	// (nucleus sampling); 1 keeps all.
	TopP float64 `mapstructure:"top_p"`
	// TopPRule is diffusion (MDLM's and ReMDM's code: keep tokens while the
	// cumulative mass including them is ≤ top_p, always the first) or
	// holtzman (keep the token that crosses top_p, as Hugging Face does).
	TopPRule string `mapstructure:"top_p_rule"`
	// Samples is the number of sequences a sampling run draws.
	Samples int `mapstructure:"samples"`
	// BatchSize is the number of sequences sampled at once.
	BatchSize int `mapstructure:"batch_size"`
	// Form is how the ancestral sampler builds p_θ(x_s|x_t) from p̃: ""
	// (the default) takes the form the model was trained with
	// (objective.d3pm_form for d3pm; mixture for mdlm, where the two agree).
	// mixture or proportional must match it for uniform and embedding
	// models, whose optimal p̃ differ between the forms (see forward.Form):
	// asking for the other is an error.
	Form string `mapstructure:"form"`
	// Remask is ReMDM's schedule of the remasking probability σ_t: cap
	// (min(eta, σ_max)), rescale (eta·σ_max), conf (σ_max spread over the
	// decoded positions by softmax(−confidence); eta unused, as in ReMDM's
	// code) or loop (remasking with σ = eta while α is held at alpha_on for
	// t in (t_off, t_on]; MDLM steps before and after).
	Remask string `mapstructure:"remask"`
	// Eta is ReMDM's η.
	Eta float64 `mapstructure:"eta"`
	// TOn, TOff and AlphaOn are ReMDM-loop's window and the α held in it
	// (ReMDM's OpenWebText values: 0.55, 0.05, 0.9).
	TOn     float64 `mapstructure:"t_on"`
	TOff    float64 `mapstructure:"t_off"`
	AlphaOn float64 `mapstructure:"alpha_on"`
	// SEDDEps is δ, the time where SEDD's predictor steps end and its final
	// denoising step (to t = 0) begins (SEDD's sampling.eps, 1e-5).
	SEDDEps float64 `mapstructure:"sedd_eps"`
	// BlockLen is the number of tokens the block sampler generates at once.
	BlockLen int `mapstructure:"block_len"`
	// BlockSampler is the diffusion sampler that generates each block.
	BlockSampler string `mapstructure:"block_sampler"`
	// BlockView is prefix (the block and the context before it, up to
	// window) or full (the whole sequence, later blocks masked, as LLaDA).
	BlockView string `mapstructure:"block_view"`
	// BlockSteps is shared (T over all blocks, as LLaDA) or per_block (T
	// for each block, as BD3-LM).
	BlockSteps string `mapstructure:"block_steps"`
	// BlockCache is Fast-dLLM's approximate key/value cache for the block
	// sampler on a bidirectional network without time input (MDLM): none,
	// prefix (the decoded context's keys and values computed once per
	// block, at its first step, and reused while the block is denoised) or
	// dual (the masked suffix's as well; needs block_view full).
	BlockCache string `mapstructure:"block_cache"`
	// BlockCacheCheck also runs the exact pass at every cached step and
	// reports how far the cached logits are from it (Result.Cache).
	BlockCacheCheck bool `mapstructure:"block_cache_check"`
	// Clamp is Diffusion-LM's clamping trick for the ddpm sampler: x̂0
	// snapped to its nearest token embedding at every step.
	Clamp bool `mapstructure:"clamp"`
	// Threshold is Fast-dLLM's confidence threshold τ for the confidence
	// sampler (alone or inside block): each step also unmasks every
	// masked position whose proposal has p̃ > τ, beyond the ⌈r/i⌉ quota
	// that finishes within T steps; a chain done early stops calling the
	// network. 0 turns it off; with T ≥ L it is Fast-dLLM's parallel
	// decoding (at least one position a step, the rest by confidence).
	Threshold float64 `mapstructure:"threshold"`
	// Window is the longest sequence the block sampler shows the model
	// (its training length): the block plus as much context before it as
	// fits.
	Window int `mapstructure:"window"`
}

// Names lists the samplers New knows.
func Names() []string {
	return []string{"ancestral", "ancestral-cached", "sedd-analytic", "sedd-euler", "remdm", "confidence", "block", "block-cached", "ddpm", "ar", "ar-nocache"}
}

// DefaultConfig is MDLM's cached ancestral sampler with 128 steps and
// untouched probabilities.
func DefaultConfig() Config {
	return Config{
		Sampler:      "ancestral-cached",
		Steps:        128,
		Temperature:  1,
		TopP:         1,
		TopPRule:     TopPDiffusion,
		Samples:      64,
		BatchSize:    16,
		Form:         "",
		Remask:       "cap",
		Eta:          0.02,
		SEDDEps:      1e-5,
		TOn:          0.55,
		TOff:         0.05,
		AlphaOn:      0.9,
		BlockLen:     32,
		BlockSampler: "ancestral-cached",
		BlockView:    "prefix",
		BlockSteps:   "shared",
		BlockCache:   "none",
		Window:       128,
	}
}

// Validate reports every bad key at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("sampling.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !slices.Contains(Names(), c.Sampler) {
		bad("sampler", "%q is not one of %s", c.Sampler, strings.Join(Names(), "|"))
	}
	positive := []struct {
		key string
		v   int
	}{{"steps", c.Steps}, {"samples", c.Samples}, {"batch_size", c.BatchSize}, {"block_len", c.BlockLen}, {"window", c.Window}}
	for _, p := range positive {
		if p.v < 1 {
			bad(p.key, "%d, want a positive integer", p.v)
		}
	}
	if !(c.Temperature >= 0) {
		bad("temperature", "%v, want >= 0 (0 is greedy)", c.Temperature)
	}
	if !(c.TopP > 0 && c.TopP <= 1) {
		bad("top_p", "%v is outside (0, 1]", c.TopP)
	}
	if !(c.Threshold >= 0 && c.Threshold < 1) {
		bad("threshold", "%v is outside [0, 1) (0 turns it off)", c.Threshold)
	}
	if c.Threshold > 0 && c.Sampler != "confidence" && !(strings.HasPrefix(c.Sampler, "block") && c.BlockSampler == "confidence") {
		bad("threshold", "%v is the confidence sampler's (sampler confidence, or block with block_sampler confidence), got sampler %s", c.Threshold, c.Sampler)
	}
	if !slices.Contains(topPRules(), c.TopPRule) {
		bad("top_p_rule", "%q is not one of %s", c.TopPRule, strings.Join(topPRules(), "|"))
	}
	if c.Form != "" {
		if _, err := parseForm(c.Form); err != nil {
			bad("form", "%v", err)
		}
	}
	if !slices.Contains(remaskNames(), c.Remask) {
		bad("remask", "%q is not one of %s", c.Remask, strings.Join(remaskNames(), "|"))
	}
	if !(c.Eta >= 0 && c.Eta <= 1) {
		bad("eta", "%v is outside [0, 1]", c.Eta)
	}
	if !(c.TOff > 0 && c.TOff < c.TOn && c.TOn < 1) {
		bad("t_on", "ReMDM-loop's window needs 0 < t_off < t_on < 1, got t_off %v, t_on %v", c.TOff, c.TOn)
	}
	if !(c.AlphaOn > 0 && c.AlphaOn < 1) {
		bad("alpha_on", "%v is outside (0, 1)", c.AlphaOn)
	}
	if !(c.SEDDEps > 0 && c.SEDDEps < 1) {
		bad("sedd_eps", "%v is outside (0, 1)", c.SEDDEps)
	}
	if c.BlockLen >= 1 && c.Window >= 1 && c.BlockLen > c.Window {
		bad("block_len", "%d exceeds sampling.window %d", c.BlockLen, c.Window)
	}
	if !slices.Contains([]string{"none", "prefix", "dual"}, c.BlockCache) {
		bad("block_cache", "%q is not one of none|prefix|dual", c.BlockCache)
	} else if c.BlockCache == "dual" && c.BlockView != "full" {
		bad("block_cache", "dual caches the masked suffix, which only block_view full shows (got %s)", c.BlockView)
	}
	if !slices.Contains([]string{"prefix", "full"}, c.BlockView) {
		bad("block_view", "%q is not one of prefix|full", c.BlockView)
	}
	if !slices.Contains([]string{"shared", "per_block"}, c.BlockSteps) {
		bad("block_steps", "%q is not one of shared|per_block", c.BlockSteps)
	}
	if !slices.Contains(blockInnerNames(), c.BlockSampler) {
		bad("block_sampler", "%q is not one of %s", c.BlockSampler, strings.Join(blockInnerNames(), "|"))
	}
	return errors.Join(errs...)
}

// Request is a request for cfg.Samples sequences of the given length,
// with the configured steps, temperature and top-p.
func (c Config) Request(length int, seed int64) Request {
	return Request{N: c.Samples, Len: length, Steps: c.Steps, Temperature: c.Temperature, TopP: c.TopP, TopPRule: c.TopPRule, Seed: seed}
}

// blockInnerNames are the samplers that can generate one block.
func blockInnerNames() []string {
	return []string{"ancestral", "ancestral-cached", "sedd-analytic", "sedd-euler", "remdm", "confidence"}
}
