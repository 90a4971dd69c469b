package sampling

import (
	"slices"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// bd3lmNet is a random tiny BD3-LM network over tinyV tokens.
func bd3lmNet(t *testing.T, block int) (forward.Process, Net) {
	t.Helper()
	proc := forward.NewAbsorbing(tinyV, forward.LogLinear{Eps: 1e-3})
	cfg := losses.DefaultConfig()
	cfg.Name, cfg.BlockSize = "bd3lm", block
	obj, err := losses.New(cfg, proc, tinyV)
	if err != nil {
		t.Fatal(err)
	}
	spec := obj.Spec()
	m := tinyModel(t, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, BlockSize: spec.BlockSize}, 64, 21)
	return proc, Net{Model: m, Objective: obj}
}

// TestBlockCachedDrawsTheUncachedTokens: BD3-LM decoding with the clean
// blocks in the KV cache gives exactly the tokens of the uncached block
// sampler under one seed (the same draws on the same logits), with one
// extra network call per block (caching it), in a window that holds the
// sequence; and with a prompt, the prompt is kept.
func TestBlockCachedDrawsTheUncachedTokens(t *testing.T) {
	torchx.Lock()
	const b = 4
	proc, net := bd3lmNet(t, b)
	cfg := DefaultConfig()
	cfg.BlockLen, cfg.Window, cfg.BlockSampler = b, 16, "ancestral-cached"
	prompt, _ := Prefix([]int{5, 6, 7, 8, 9}, 16)
	for _, c := range []struct {
		name string
		req  Request
	}{
		{"unconditional", Request{N: 3, Len: 16, Steps: 16, Temperature: 1, TopP: 1, Seed: 4}},
		{"prompted", Request{N: 2, Steps: 16, Temperature: 1, TopP: 1, Seed: 9, Template: prompt}},
	} {
		plain := generate(t, "block", cfg, proc, net, c.req)
		cached := generate(t, "block-cached", cfg, proc, net, c.req)
		for i := range plain.Tokens {
			if !slices.Equal(plain.Tokens[i], cached.Tokens[i]) {
				t.Errorf("%s sample %d: block %v, block-cached %v", c.name, i, plain.Tokens[i], cached.Tokens[i])
			}
			if c.req.Template.NumGiven() > 0 && !slices.Equal(cached.Tokens[i][:5], []int{5, 6, 7, 8, 9}) {
				t.Errorf("%s sample %d: prompt not kept: %v", c.name, i, cached.Tokens[i])
			}
		}
		if blocks := 16 / b; cached.ModelCalls != plain.ModelCalls+blocks {
			t.Errorf("%s: %d calls cached, %d uncached, want %d more (one per block)", c.name, cached.ModelCalls, plain.ModelCalls, blocks)
		}
	}
}

// TestBD3LMSamplerChecks: BD3-LM networks are decoded block by block with
// block_len = b; block-cached needs a BD3-LM network.
func TestBD3LMSamplerChecks(t *testing.T) {
	torchx.Lock()
	proc, net := bd3lmNet(t, 4)
	nets := newTinyNets(t, 32)
	cfg := DefaultConfig()
	cfg.BlockLen, cfg.Window = 4, 16
	wrongLen := cfg
	wrongLen.BlockLen = 8
	for _, c := range []struct {
		name string
		cfg  Config
		net  Net
		want string
	}{
		{"ancestral-cached", cfg, net, `sampler "ancestral-cached": a BD3-LM network (objective bd3lm) is decoded block by block`},
		{"block-cached", wrongLen, net, "needs sampling.block_len 4 (got 8)"},
		{"block-cached", cfg, nets.mdlm, `sampler "block-cached" caches the clean blocks of a BD3-LM network (objective bd3lm), got objective mdlm`},
	} {
		_, err := New(c.name, c.cfg, proc, c.net)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestApproximateBlockCache is Fast-dLLM's cache on a bidirectional MDLM
// network. With one step per block every step is the block's exact
// prefill, so the tokens are the uncached sampler's; with four steps per
// block three of them read the stale cache, and the check reports how far
// their logits are from the exact pass (finite, not zero).
func TestApproximateBlockCache(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 32)
	for _, c := range []struct{ cache, view string }{{"prefix", "prefix"}, {"dual", "full"}} {
		cfg := DefaultConfig()
		cfg.BlockLen, cfg.Window, cfg.BlockView, cfg.BlockSampler = 4, 16, c.view, "ancestral"
		exactCfg, cachedCfg := cfg, cfg
		cachedCfg.BlockCache, cachedCfg.BlockCacheCheck = c.cache, true
		req := Request{N: 2, Len: 16, Steps: 4, Temperature: 1, TopP: 1, Seed: 6}
		exact := generate(t, "block", exactCfg, nets.absorbing, nets.mdlm, req)
		cached := generate(t, "block", cachedCfg, nets.absorbing, nets.mdlm, req)
		for i := range exact.Tokens {
			if !slices.Equal(exact.Tokens[i], cached.Tokens[i]) {
				t.Errorf("%s, one step per block: sample %d %v, exact %v", c.cache, i, cached.Tokens[i], exact.Tokens[i])
			}
		}
		if d := cached.Cache; d == nil || d.Steps != 0 {
			t.Errorf("%s, one step per block: deviation %+v, want no cached step", c.cache, d)
		}
		req.Steps = 16
		cached = generate(t, "block", cachedCfg, nets.absorbing, nets.mdlm, req)
		d := cached.Cache
		if d == nil || d.Steps != 12 || !(d.MaxAbsLogit > 0 && d.MaxAbsLogit < 100) || !(d.MeanKL >= 0 && d.MeanKL < 10) {
			t.Errorf("%s, four steps per block: deviation %+v, want 12 cached steps with a small non-zero difference", c.cache, d)
		}
		t.Logf("%s cache, 4 steps per block of 4: max |Δlogit| %.3g, mean KL %.3g nats over %d steps", c.cache, d.MaxAbsLogit, d.MeanKL, d.Steps)
	}
	bad := DefaultConfig()
	bad.BlockCache = "dual"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "sampling.block_cache: dual caches the masked suffix, which only block_view full shows") {
		t.Errorf("dual with the prefix view: %v", err)
	}
	proc, bd := bd3lmNet(t, 4)
	bc := DefaultConfig()
	bc.BlockLen, bc.Window, bc.BlockCache = 4, 16, "prefix"
	if _, err := New("block", bc, proc, bd); err == nil || !strings.Contains(err.Error(), "a BD3-LM network's is exact: use sampler block-cached") {
		t.Errorf("approximate cache on BD3-LM: %v", err)
	}
}
