// Package sampling generates text from the project's models: ancestral
// sampling for every forward process (with MDLM's cache for absorbing),
// SEDD's analytic and Euler samplers, ReMDM remasking, confidence-ordered
// unmasking, semi-autoregressive block decoding, and autoregressive decoding
// for the causal baseline. Every sampler can hold given tokens fixed
// (prompts, infilling) and record a filmstrip of its chain.
//
// All categorical draws use float64 Gumbel noise: with float32 noise the
// largest perturbations are cut off, which lowers the entropy of samples
// and flatters generative perplexity.
package sampling

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	meter "github.com/dlmlab/difflm/progress"
	"github.com/dlmlab/difflm/torchx"
)

// Sampler draws sequences. Generate must run on a torchx.Lock'ed thread.
type Sampler interface {
	Name() string
	Generate(ctx context.Context, req Request) (Result, error)
}

// Request says what to generate.
type Request struct {
	N     int // sequences
	Len   int // tokens per sequence; 0 takes the template's length
	Steps int // reverse steps T (ignored by ar, which takes one per token)
	// Template holds given tokens (a prompt, an infilling frame); its
	// zero value asks for unconditional samples.
	Template Template
	// Temperature and TopP reshape p̃(x0|x_t) (next-token probabilities for
	// ar): 1 and 1 leave it untouched, temperature 0 is greedy.
	Temperature, TopP float64
	// TopPRule is TopPDiffusion ("" too) or TopPHoltzman.
	TopPRule string
	Seed     int64
	// Recorder, when set, records a filmstrip of the first sequence.
	Recorder *Recorder
}

// Result is what Generate returns.
type Result struct {
	Tokens     [][]int // N rows of Len token ids
	ModelCalls int     // network evaluations over all batches
	Elapsed    time.Duration
	Filmstrip  *Filmstrip // nil without a Recorder
	// Cache is the approximate cache's distance from exact decoding, with
	// sampling.block_cache_check; nil otherwise.
	Cache *CacheDeviation
}

// CachedLM is a causal network with a key/value cache, for ar;
// models.Transformer implements it.
type CachedLM interface {
	losses.Net
	NewKVCache() *models.KVCache
	ForwardCached(x, sigma *ts.Tensor, cache *models.KVCache) *ts.Tensor
}

// Net is the network with the objective it was trained with, which says
// what its outputs mean: the samplers read them only through the
// objective (losses.Denoiser's clean-token probabilities for mdlm and
// d3pm, losses.Scorer's log-scores for sedd), so that training and
// sampling share one parameterisation.
type Net struct {
	Model     losses.Net
	Objective losses.Objective
	// Device is where the network lives; the zero value means the CPU.
	Device gotch.Device
}

// New builds the sampler called name for a network trained with process
// proc (nil for ar, which has none). It rejects combinations that cannot
// work, naming what the sampler needs.
func New(name string, cfg Config, proc forward.Process, net Net) (Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if net.Device.Name == "" {
		net.Device = gotch.CPU
	}
	if b := net.Objective.Spec().BlockSize; b > 0 && name != "block" && name != "block-cached" {
		return nil, fmt.Errorf("sampler %q: a BD3-LM network (objective bd3lm) is decoded block by block, each block given the clean ones before it: use sampler block-cached (or block) with sampling.block_len %d (its block size) and block_view prefix", name, b)
	}
	var (
		l   loop
		err error
	)
	switch name {
	case "ar", "ar-nocache":
		l, err = newAR(name, net)
	case "block", "block-cached":
		l, err = newBlock(cfg, proc, net, name == "block-cached")
	case "ddpm":
		l, err = newDDPM(cfg, net)
	default:
		l, err = newDiffusion(name, cfg, proc, net)
	}
	if err != nil {
		return nil, err
	}
	// Undecided positions hold V: the mask id for absorbing, an id no token
	// has otherwise (ar's network outputs exactly V tokens).
	pending := net.Objective.Spec().VocabOut
	switch {
	case proc != nil:
		pending = proc.Vocab()
	case net.Objective.Spec().EmbedDim > 0: // its outputs are points, not V logits
		pending = net.Objective.Spec().VocabIn
	}
	inner := name
	if strings.HasPrefix(name, "block") {
		inner = cfg.BlockSampler
	}
	return &sampler{name: name, loop: l, batch: cfg.BatchSize, pending: pending, device: net.Device,
		scores: strings.HasPrefix(inner, "sedd"), steps: !strings.HasPrefix(name, "ar")}, nil
}

// newDiffusion builds one of the samplers that run a reverse chain over the
// whole sequence.
func newDiffusion(name string, cfg Config, proc forward.Process, net Net) (loop, error) {
	if !slices.Contains(blockInnerNames(), name) {
		return nil, fmt.Errorf("sampler %q: unknown, want one of %s", name, strings.Join(Names(), "|"))
	}
	if err := checkDiffusionNet(name, proc, net); err != nil {
		return nil, err
	}
	obj := net.Objective
	den, isDenoiser := obj.(losses.Denoiser)
	scorer, isScorer := obj.(losses.Scorer)
	seddName := name == "sedd-analytic" || name == "sedd-euler"
	switch {
	case seddName && !isScorer:
		return nil, fmt.Errorf("sampler %q needs scores (objective sedd), got objective %s", name, obj.Name())
	case !seddName && !isDenoiser:
		return nil, fmt.Errorf("sampler %q needs clean-token probabilities (objective mdlm or d3pm), got objective %s", name, obj.Name())
	}
	needsAbsorbing := name == "ancestral-cached" || name == "remdm" || name == "confidence"
	if needsAbsorbing && proc.Name() != "absorbing" {
		return nil, fmt.Errorf("sampler %q needs the absorbing process, got %s", name, proc.Name())
	}
	if name == "ancestral-cached" && obj.Spec().TimeCond {
		return nil, fmt.Errorf("sampler %q needs a model without time input (its cache reuses outputs across noise levels), this one is time-conditioned", name)
	}
	switch name {
	case "ancestral", "ancestral-cached":
		form, err := trainedForm(cfg.Form, proc, obj)
		if err != nil {
			return nil, fmt.Errorf("sampler %q: %w", name, err)
		}
		return &ancestral{proc: proc, model: net.Model, den: den, form: form, reuse: name == "ancestral-cached"}, nil
	case "sedd-analytic", "sedd-euler":
		return &sedd{proc: proc, model: net.Model, scorer: scorer, euler: name == "sedd-euler", eps: cfg.SEDDEps}, nil
	case "remdm":
		return &remdm{proc: proc, model: net.Model, den: den, schedule: cfg.Remask, eta: cfg.Eta,
			loop: loopWindow{tOn: cfg.TOn, tOff: cfg.TOff, alphaOn: cfg.AlphaOn}}, nil
	default:
		return &confidence{proc: proc, model: net.Model, den: den, threshold: cfg.Threshold}, nil
	}
}

// trainedForm is the form of p_θ(x_s|x_t) to sample with: the one the
// objective was trained with (d3pm says it; mdlm is absorbing-only, where
// the forms agree, and takes mixture). asked ("" = the trained one) must
// match it unless the process is absorbing.
func trainedForm(asked string, proc forward.Process, obj losses.Objective) (forward.Form, error) {
	trained, trainedName := forward.Mixture, "mixture"
	if f, ok := obj.(interface{ Form() forward.Form }); ok {
		trained = f.Form()
		if trained == forward.Proportional {
			trainedName = "proportional"
		}
	}
	if asked == "" {
		return trained, nil
	}
	form, err := parseForm(asked)
	if err != nil {
		return 0, fmt.Errorf("sampling.form: %w", err)
	}
	if form != trained && proc.Name() != "absorbing" {
		return 0, fmt.Errorf("sampling.form: %s, but the model was trained with objective.d3pm_form %s: the two forms' optimal p̃ differ for the %s process, so this would follow another reverse chain than the one the model learned; leave sampling.form empty to sample with the trained form",
			asked, trainedName, proc.Name())
	}
	return form, nil
}

// checkDiffusionNet checks what every diffusion sampler needs of the
// network and the process.
func checkDiffusionNet(name string, proc forward.Process, net Net) error {
	if proc == nil {
		return fmt.Errorf("sampler %q needs a forward process, got none", name)
	}
	obj := net.Objective
	spec := obj.Spec()
	switch {
	case spec.Causal:
		return fmt.Errorf("sampler %q needs a bidirectional diffusion model, got a causal one (objective %s); use ar", name, obj.Name())
	case spec.VocabIn != proc.NumStates():
		return fmt.Errorf("sampler %q: objective %s's network takes %d input states, process %s has %d", name, obj.Name(), spec.VocabIn, proc.Name(), proc.NumStates())
	}
	return nil
}

// loop is one sampler's algorithm: it runs the chain of one batch.
type loop interface {
	sample(ctx context.Context, c *chain) error
}

// sampler is the part every sampler shares: checking the request, seeding,
// batching, timing and recording.
type sampler struct {
	name    string
	loop    loop
	batch   int
	pending int  // the id of undecided positions (mask id, or V)
	scores  bool // reads a score network: no p̃ to reshape
	steps   bool // takes Request.Steps (ar takes one step per token)
	device  gotch.Device
}

func (s *sampler) Name() string { return s.name }

// Generate seeds torch's generator with req.Seed and samples req.N
// sequences in batches.
func (s *sampler) Generate(ctx context.Context, req Request) (Result, error) {
	start := time.Now()
	req, err := s.check(req)
	if err != nil {
		return Result{}, err
	}
	torchx.Seed(req.Seed)
	var res Result
	var rec *recording
	// One tick per network call; T per batch (its length for ar) is what
	// most samplers take.
	per := req.Steps
	if !s.steps {
		per = req.Len
	}
	bar := meter.New(os.Stderr, "sample "+s.name, per*((req.N+s.batch-1)/s.batch), 0, nil)
	defer bar.Finish()
	if req.Recorder != nil {
		rec = newRecording(*req.Recorder, s.pending)
	}
	for done := 0; done < req.N; {
		b := min(s.batch, req.N-done)
		c := newChain(b, req, s.device, s.pending)
		c.tick = func() { bar.Add(1, "") }
		if done == 0 && rec != nil {
			c.watch = rec.observe
		}
		err := s.loop.sample(ctx, c)
		if err == nil {
			res.Tokens = append(res.Tokens, tokenRows(c.x)...)
			res.ModelCalls += c.calls
		}
		c.close()
		if err != nil {
			return Result{}, fmt.Errorf("sampler %s: %w", s.name, err)
		}
		done += b
	}
	if rec != nil {
		res.Filmstrip = rec.filmstrip()
	}
	res.Elapsed = time.Since(start)
	if d, ok := s.loop.(interface{ deviation() *CacheDeviation }); ok {
		res.Cache = d.deviation()
	}
	return res, nil
}

// check validates req and fills Len from the template.
func (s *sampler) check(req Request) (Request, error) {
	if n := len(req.Template.Tokens); n > 0 {
		if len(req.Template.Given) != n {
			return req, fmt.Errorf("sampler %s: template of %d tokens with %d given flags", s.name, n, len(req.Template.Given))
		}
		if req.Len == 0 {
			req.Len = n
		}
		if req.Len != n {
			return req, fmt.Errorf("sampler %s: request of length %d with a template of %d tokens", s.name, req.Len, n)
		}
		for i, tok := range req.Template.Tokens {
			if req.Template.Given[i] && (tok < 0 || tok >= s.pending) {
				return req, fmt.Errorf("sampler %s: given token %d at position %d is not one of the %d tokens", s.name, tok, i, s.pending)
			}
		}
	}
	switch {
	case req.N < 1 || req.Len < 1:
		return req, fmt.Errorf("sampler %s: request for %d sequences of %d tokens, want positive counts", s.name, req.N, req.Len)
	case req.Steps < 1 && s.steps:
		return req, fmt.Errorf("sampler %s: %d steps, want at least 1", s.name, req.Steps)
	case !(req.Temperature >= 0):
		return req, fmt.Errorf("sampler %s: temperature %v, want >= 0", s.name, req.Temperature)
	case !(req.TopP > 0 && req.TopP <= 1):
		return req, fmt.Errorf("sampler %s: top-p %v is outside (0, 1]", s.name, req.TopP)
	case req.TopPRule != "" && !slices.Contains(topPRules(), req.TopPRule):
		return req, fmt.Errorf("sampler %s: top-p rule %q is not one of %s", s.name, req.TopPRule, strings.Join(topPRules(), "|"))
	}
	if s.scores && (req.Temperature != 1 || req.TopP != 1) {
		return req, fmt.Errorf("sampler %s: temperature and top-p need clean-token probabilities, which a score model does not give; leave them at 1", s.name)
	}
	return req, nil
}

// tokenRows copies x [B,L] into Go slices.
func tokenRows(x *ts.Tensor) [][]int {
	size := x.MustSize()
	cpu := x.MustTo(gotch.CPU, false)
	flat := cpu.Int64Values(true)
	rows := make([][]int, size[0])
	for i := range rows {
		rows[i] = make([]int, size[1])
		for j := range rows[i] {
			rows[i][j] = int(flat[int64(i)*size[1]+int64(j)])
		}
	}
	return rows
}
