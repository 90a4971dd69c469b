package sampling

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/internal/toydist"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// TestCacheGivesIdenticalSamplesWithFewerCalls: MDLM's cache must change
// the cost, never the samples.
func TestCacheGivesIdenticalSamplesWithFewerCalls(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 32)
	cfg := DefaultConfig()
	cfg.BatchSize = 2 // two batches: the cache must not leak from one to the next
	for _, shape := range []struct{ temp, topP float64 }{{1, 1}, {0.8, 0.9}} {
		req := Request{N: 4, Len: 16, Steps: 32, Temperature: shape.temp, TopP: shape.topP, Seed: 7}
		plain := generate(t, "ancestral", cfg, nets.absorbing, nets.mdlm, req)
		cached := generate(t, "ancestral-cached", cfg, nets.absorbing, nets.mdlm, req)
		for i := range plain.Tokens {
			if !slices.Equal(plain.Tokens[i], cached.Tokens[i]) {
				t.Fatalf("temperature %v top-p %v: sample %d differs:\n  plain  %v\n  cached %v", shape.temp, shape.topP, i, plain.Tokens[i], cached.Tokens[i])
			}
		}
		if plain.ModelCalls != 2*32 {
			t.Errorf("uncached sampler made %d calls, want %d (one per step and batch)", plain.ModelCalls, 2*32)
		}
		if !(cached.ModelCalls < plain.ModelCalls) {
			t.Errorf("cached sampler made %d calls, not fewer than %d", cached.ModelCalls, plain.ModelCalls)
		}
	}
}

// TestGivenTokensNeverMove runs every sampler on an infilling template.
func TestGivenTokensNeverMove(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 32)
	tmpl := Template{Tokens: make([]int, 16), Given: make([]bool, 16)}
	for _, i := range []int{0, 1, 2, 3, 8, 9, 10, 15} {
		tmpl.Tokens[i], tmpl.Given[i] = (7*i+3)%tinyV, true
	}
	cfg := DefaultConfig()
	cfg.BlockLen, cfg.Window, cfg.Remask, cfg.Eta = 8, 12, "conf", 1
	for _, name := range Names() {
		proc, net := nets.forSampler(name)
		c := cfg
		if name == "block-cached" {
			c.BlockLen = tinyBlock
		}
		res := generate(t, name, c, proc, net, Request{N: 3, Steps: 8, Template: tmpl, Temperature: 1, TopP: 1, Seed: 3})
		for r, row := range res.Tokens {
			if len(row) != 16 {
				t.Fatalf("%s: row %d has %d tokens, want 16", name, r, len(row))
			}
			for i, tok := range row {
				if tmpl.Given[i] && tok != tmpl.Tokens[i] {
					t.Errorf("%s: row %d position %d is %d, the given token is %d", name, r, i, tok, tmpl.Tokens[i])
				}
				if tok < 0 || tok >= tinyV {
					t.Errorf("%s: row %d position %d holds %d, not a token", name, r, i, tok)
				}
			}
		}
	}
}

// TestBlockDecodesBeyondTrainingLength generates 3L tokens with models
// whose rotary table holds only L positions (they panic beyond it).
func TestBlockDecodesBeyondTrainingLength(t *testing.T) {
	torchx.Lock()
	const l = 16
	nets := newTinyNets(t, l)
	cfg := DefaultConfig()
	cfg.BlockLen, cfg.Window = 8, l
	prompt, _ := Prefix([]int{5, 6, 7, 8, 9}, 3*l)
	// 6 blocks of 4 steps. The first block has 3 free positions (5 are
	// given): confidence decides one per step and needs no call on the
	// fourth; SEDD adds its denoising call to each block's 4 steps. The
	// cached sampler's count depends on the draws.
	calls := map[string]int{"confidence": 23, "sedd-analytic": 30}
	for _, inner := range []string{"ancestral-cached", "confidence", "sedd-analytic"} {
		cfg.BlockSampler = inner
		proc, net := nets.forSampler(inner)
		res := generate(t, "block", cfg, proc, net, Request{N: 2, Len: 3 * l, Steps: 24, Template: prompt, Temperature: 1, TopP: 1, Seed: 1})
		for _, row := range res.Tokens {
			if len(row) != 3*l || !slices.Equal(row[:5], []int{5, 6, 7, 8, 9}) || slices.ContainsFunc(row, func(tok int) bool { return tok >= tinyV }) {
				t.Errorf("%s: bad block-decoded row %v", inner, row)
			}
		}
		if want, ok := calls[inner]; ok && res.ModelCalls != want {
			t.Errorf("%s: %d model calls, want %d", inner, res.ModelCalls, want)
		}
	}
}

// TestARCacheMatchesNoCache: the key/value cache changes the cost of ar,
// not its samples.
func TestARCacheMatchesNoCache(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 32)
	prompt, _ := Prefix([]int{1, 2, 3}, 12)
	req := Request{N: 4, Template: prompt, Temperature: 0.9, TopP: 0.95, Seed: 11}
	cached := generate(t, "ar", DefaultConfig(), nil, nets.ar, req)
	plain := generate(t, "ar-nocache", DefaultConfig(), nil, nets.ar, req)
	for i := range cached.Tokens {
		if !slices.Equal(cached.Tokens[i], plain.Tokens[i]) {
			t.Fatalf("sample %d: cached %v, uncached %v", i, cached.Tokens[i], plain.Tokens[i])
		}
	}
	if cached.ModelCalls != 9 || plain.ModelCalls != 9 {
		t.Errorf("model calls %d (cache) and %d (no cache), want 9 each", cached.ModelCalls, plain.ModelCalls)
	}
	res := generate(t, "ar", DefaultConfig(), nil, nets.ar, Request{N: 2, Len: 5, Temperature: 1, TopP: 1, Seed: 1})
	if res.ModelCalls != 5 || slices.ContainsFunc(res.Tokens[0], func(tok int) bool { return tok >= tinyV }) {
		t.Errorf("unconditional ar: %d calls for 5 tokens, samples %v", res.ModelCalls, res.Tokens)
	}
}

// TestConfidenceUnmasksMostConfidentFirst: on the toy with greedy
// proposals the order is known. With all masked the marginals are
// position 0: (0.40, 0.30, 0.30), position 1: (0.45, 0.25, 0.30), so
// step 1 decides position 1 = 0; then p(x^0 | x^1 = 0) ∝ (0.30, 0.05,
// 0.10) decides position 0 = 0.
func TestConfidenceUnmasksMostConfidentFirst(t *testing.T) {
	torchx.Lock()
	d := toyTable("absorbing")
	proc := toyProcess(d)
	res := generate(t, "confidence", DefaultConfig(), proc, toyNetFor(t, d, proc, "mdlm", false),
		Request{N: 2, Len: 2, Steps: 2, Temperature: 0, TopP: 1, Recorder: &Recorder{}})
	want := []Frame{{0, 0, []int{3, 3}}, {1, 1, []int{3, 0}}, {2, 2, []int{0, 0}}}
	f := res.Filmstrip
	if len(f.Frames) != len(want) {
		t.Fatalf("%d frames, want %d", len(f.Frames), len(want))
	}
	for i, fr := range f.Frames {
		if fr.Step != want[i].Step || fr.ModelCalls != want[i].ModelCalls || !slices.Equal(fr.Tokens, want[i].Tokens) {
			t.Errorf("frame %d = %+v, want %+v", i, fr, want[i])
		}
	}
	if !slices.Equal(f.Decided, []int{2, 1}) || f.Steps != 2 || f.Pending != 3 {
		t.Errorf("filmstrip decided %v steps %d pending %d, want [2 1], 2, 3", f.Decided, f.Steps, f.Pending)
	}
}

// TestConfidenceThreshold is Fast-dLLM's parallel decoding on the same
// toy: at τ = 0.35 both positions (greedy confidences 0.45 and 0.40) clear
// it, so one network call decides the whole sequence; at τ = 0.42 only
// position 1 does, and the quota rule decides position 0 at the second.
func TestConfidenceThreshold(t *testing.T) {
	torchx.Lock()
	d := toyTable("absorbing")
	proc := toyProcess(d)
	for _, c := range []struct {
		tau   float64
		calls int
	}{{0.35, 1}, {0.42, 2}, {0.99, 2}} {
		cfg := DefaultConfig()
		cfg.Sampler, cfg.Threshold = "confidence", c.tau
		res := generate(t, "confidence", cfg, proc, toyNetFor(t, d, proc, "mdlm", false),
			Request{N: 2, Len: 2, Steps: 2, Temperature: 0, TopP: 1})
		for _, row := range res.Tokens {
			if !slices.Equal(row, []int{0, 0}) {
				t.Errorf("τ = %v: sample %v, want [0 0]", c.tau, row)
			}
		}
		if res.ModelCalls != c.calls {
			t.Errorf("τ = %v: %d model calls, want %d", c.tau, res.ModelCalls, c.calls)
		}
	}
	bad := DefaultConfig()
	bad.Threshold = 0.9
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "sampling.threshold: 0.9 is the confidence sampler's") {
		t.Errorf("threshold with ancestral-cached: %v", err)
	}
}

// TestReMDMConfRemasks: with η = 1 some decoded token is masked again, the
// given ones never are, and the result has no masks.
func TestReMDMConfRemasks(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 32)
	cfg := DefaultConfig()
	cfg.Remask, cfg.Eta = "conf", 1
	prompt, _ := Prefix([]int{4, 5}, 16)
	res := generate(t, "remdm", cfg, nets.absorbing, nets.mdlm, Request{N: 2, Steps: 64, Template: prompt, Temperature: 1, TopP: 1, Seed: 5, Recorder: &Recorder{}})
	remasked := false
	frames := res.Filmstrip.Frames
	for k := 1; k < len(frames); k++ {
		for i, tok := range frames[k].Tokens {
			if tok == tinyV && frames[k-1].Tokens[i] != tinyV {
				remasked = true
				if i < 2 {
					t.Errorf("given position %d remasked at step %d", i, k)
				}
			}
		}
	}
	if !remasked {
		t.Error("no token was remasked in 64 steps with eta 1")
	}
	if slices.Contains(frames[len(frames)-1].Tokens, tinyV) {
		t.Errorf("final state %v still holds masks", frames[len(frames)-1].Tokens)
	}
}

// TestEmbeddingProcessSamples runs the samplers that accept the
// embedding-distance process (Column and Propagate of the eigen form,
// Propagate at negative noise in the analytic step, neighbour lists in
// Euler).
func TestEmbeddingProcessSamples(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 32)
	torchx.Seed(9)
	table := ts.MustRandn([]int64{tinyV, 8}, gotch.Float, gotch.CPU)
	proc, err := forward.NewEmbedding(table, 5, forward.LogLinear{Eps: 1e-3}, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Drop()
	for _, run := range []struct{ name, form, objective string }{
		{"ancestral", "mixture", "d3pm"}, {"ancestral", "proportional", "d3pm"},
		{"sedd-analytic", "mixture", "sedd"}, {"sedd-euler", "mixture", "sedd"},
	} {
		cfg := DefaultConfig()
		cfg.Form = run.form
		net := Net{Model: nets.d3pm.Model, Objective: objectiveForm(t, run.objective, proc, tinyV, run.form)}
		res := generate(t, run.name, cfg, proc, net, Request{N: 2, Len: 8, Steps: 6, Temperature: 1, TopP: 1, Seed: 2})
		for _, row := range res.Tokens {
			if slices.ContainsFunc(row, func(tok int) bool { return tok < 0 || tok >= tinyV }) {
				t.Errorf("%s %s: row %v holds a non-token", run.name, run.form, row)
			}
		}
	}
}

// TestNewRejectsIncompatibleCombinations checks the exact messages.
func TestNewRejectsIncompatibleCombinations(t *testing.T) {
	torchx.Lock()
	n := newTinyNets(t, 32)
	timed := Net{Model: n.sedd.Model, Objective: objective(t, "d3pm", n.absorbing, tinyV)}
	blockCfg := DefaultConfig()
	blockCfg.BlockSampler = "sedd-analytic"
	cases := []struct {
		name string
		cfg  Config
		proc forward.Process
		net  Net
		want string
	}{
		{"ancestral-cached", DefaultConfig(), n.uniform, n.d3pm, `sampler "ancestral-cached" needs the absorbing process, got uniform`},
		{"ancestral-cached", DefaultConfig(), n.absorbing, timed, `sampler "ancestral-cached" needs a model without time input (its cache reuses outputs across noise levels), this one is time-conditioned`},
		{"remdm", DefaultConfig(), n.uniform, n.d3pm, `sampler "remdm" needs the absorbing process, got uniform`},
		{"confidence", DefaultConfig(), n.uniform, n.d3pm, `sampler "confidence" needs the absorbing process, got uniform`},
		{"sedd-analytic", DefaultConfig(), n.absorbing, n.mdlm, `sampler "sedd-analytic" needs scores (objective sedd), got objective mdlm`},
		{"sedd-euler", DefaultConfig(), n.uniform, n.d3pm, `sampler "sedd-euler" needs scores (objective sedd), got objective d3pm`},
		{"ancestral", DefaultConfig(), n.absorbing, n.sedd, `sampler "ancestral" needs clean-token probabilities (objective mdlm or d3pm), got objective sedd`},
		{"ancestral", DefaultConfig(), nil, n.ar, `sampler "ancestral" needs a forward process, got none`},
		{"ancestral", DefaultConfig(), n.uniform, n.ar, `sampler "ancestral" needs a bidirectional diffusion model, got a causal one (objective ar); use ar`},
		{"ancestral", DefaultConfig(), n.uniform, n.mdlm, `sampler "ancestral": objective mdlm's network takes 41 input states, process uniform has 40`},
		{"block", blockCfg, n.absorbing, n.mdlm, `sampler "block" (sampling.block_sampler): sampler "sedd-analytic" needs scores (objective sedd), got objective mdlm`},
		{"ar", DefaultConfig(), n.absorbing, n.mdlm, `sampler "ar" needs an autoregressive model (objective ar), got objective mdlm`},
		{"ar-nocache", DefaultConfig(), n.uniform, n.d3pm, `sampler "ar-nocache" needs an autoregressive model (objective ar), got objective d3pm`},
		{"beam", DefaultConfig(), n.absorbing, n.mdlm, `sampler "beam": unknown, want one of ` + strings.Join(Names(), "|")},
	}
	for _, c := range cases {
		_, err := New(c.name, c.cfg, c.proc, c.net)
		if err == nil || err.Error() != c.want {
			t.Errorf("New(%q, %s process):\n got %v\nwant %s", c.name, procName(c.proc), err, c.want)
		}
	}
}

// TestGenerateRejectsBadRequests checks the messages of requests a
// sampler cannot serve.
func TestGenerateRejectsBadRequests(t *testing.T) {
	torchx.Lock()
	n := newTinyNets(t, 32)
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"sedd-analytic", Request{N: 1, Len: 4, Steps: 2, Temperature: 0.5, TopP: 1}, "sampler sedd-analytic: temperature and top-p need clean-token probabilities, which a score model does not give; leave them at 1"},
		{"ancestral", Request{N: 1, Len: 4, Steps: 0, Temperature: 1, TopP: 1}, "sampler ancestral: 0 steps, want at least 1"},
		{"confidence", Request{N: 1, Len: 5, Steps: 2, Temperature: 1, TopP: 1, Template: Template{Tokens: []int{1, 0}, Given: []bool{true, false}}}, "sampler confidence: request of length 5 with a template of 2 tokens"},
		{"ancestral", Request{N: 1, Len: 4, Steps: 2, Temperature: 1, TopP: 0}, "sampler ancestral: top-p 0 is outside (0, 1]"},
		{"ar", Request{N: 1, Temperature: 1, TopP: 1, Template: Template{Tokens: []int{tinyV, 0}, Given: []bool{true, false}}}, "sampler ar: given token 40 at position 0 is not one of the 40 tokens"},
	}
	for _, c := range cases {
		proc, net := n.forSampler(c.name)
		s, err := New(c.name, DefaultConfig(), proc, net)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Generate(context.Background(), c.req)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v\nwant %s", c.name, err, c.want)
		}
	}
}

func procName(p forward.Process) string {
	if p == nil {
		return "no"
	}
	return p.Name()
}

// TestFormFollowsTheModel: sampling.form empty takes the form the d3pm
// model was trained with; asking for the other form of a uniform model is
// an error that says why; for absorbing the forms agree and either is
// accepted.
func TestFormFollowsTheModel(t *testing.T) {
	torchx.Lock()
	n := newTinyNets(t, 16)
	for _, c := range []struct {
		trained, asked string
		proc           forward.Process
		want           forward.Form
		err            string
	}{
		{"proportional", "", n.uniform, forward.Proportional, ""},
		{"mixture", "", n.uniform, forward.Mixture, ""},
		{"proportional", "proportional", n.uniform, forward.Proportional, ""},
		{"proportional", "mixture", n.uniform, 0, "trained with objective.d3pm_form proportional"},
		{"mixture", "proportional", n.uniform, 0, "trained with objective.d3pm_form mixture"},
		{"proportional", "mixture", n.absorbing, forward.Mixture, ""},
	} {
		obj := objectiveForm(t, "d3pm", c.proc, tinyV, c.trained)
		got, err := trainedForm(c.asked, c.proc, obj)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("trained %s, asked %q on %s: error %v, want one containing %q", c.trained, c.asked, c.proc.Name(), err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("trained %s, asked %q on %s: %v, %v; want %v", c.trained, c.asked, c.proc.Name(), got, err, c.want)
		}
	}
}

// TestConfidenceTimeMatchesMaskFraction: a time-conditioned network is
// told the σ whose expected mask fraction is the one it sees. 6 positions
// in 3 steps: 6, then 4, then 2 masked, so σ = σ(1) (everything masked,
// capped there), −log(1 − 4/6), −log(1 − 2/6). Before, it was told
// σ(i/T) = σ(1), σ(2/3), σ(1/3) whatever was masked.
func TestConfidenceTimeMatchesMaskFraction(t *testing.T) {
	torchx.Lock()
	sched := forward.LogLinear{Eps: 1e-3}
	proc := forward.NewAbsorbing(3, sched)
	var seen []float64
	net := toydist.SigmaRecorder(3, &seen)
	generate(t, "confidence", DefaultConfig(), proc, Net{Model: net, Objective: objective(t, "d3pm", proc, 3)},
		Request{N: 1, Len: 6, Steps: 3, Temperature: 1, TopP: 1, Seed: 1})
	want := []float64{sched.Sigma(1), -math.Log(1 - 4.0/6), -math.Log(1 - 2.0/6)}
	if len(seen) != len(want) {
		t.Fatalf("network saw σ %v, want %v", seen, want)
	}
	for i := range want {
		if math.Abs(seen[i]-want[i]) > 1e-6*want[i] {
			t.Errorf("step %d: σ %v, want %v", i+1, seen[i], want[i])
		}
	}
}

// TestRemdmConfSigma: ReMDM-conf's σ^ℓ = σ_max·softmax(−ψ)^ℓ over the
// decoded positions, with no η (ReMDM's remdm-conf), and 0 where masked.
// Decoded ψ = (0.9, 0.1) and one masked position: softmax(−0.9, −0.1) =
// (e^−0.9, e^−0.1)/(e^−0.9 + e^−0.1).
func TestRemdmConfSigma(t *testing.T) {
	torchx.Lock()
	r := &remdm{schedule: "conf", eta: 0.02}
	c := &chain{b: 1, l: 3, device: gotch.CPU}
	psi := ts.MustOfSlice([]float64{0.9, 0.1, 0}).MustView([]int64{1, 3}, true)
	decoded := ts.MustOfSlice([]bool{true, true, false}).MustView([]int64{1, 3}, true)
	s := torchx.NewScope()
	defer s.Close()
	got := s.T(r.sigma(s, c, psi, decoded, 0.5, false)).Float64Values()
	z := math.Exp(-0.9) + math.Exp(-0.1)
	want := []float64{0.5 * math.Exp(-0.9) / z, 0.5 * math.Exp(-0.1) / z, 0}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("σ = %v, want %v", got, want)
			break
		}
	}
}

// TestBlockConventions: 16 tokens in blocks of 8 with T = 4 and the
// (uncached) ancestral sampler, one call per step. shared: 2 steps per
// block, 4 calls; per_block: 4 steps per block, 8 calls. prefix: the first
// block's calls see 8 positions, the second's 16; full: every call sees
// all 16, and during the first block the last 8 are all masked.
func TestBlockConventions(t *testing.T) {
	torchx.Lock()
	proc := forward.NewAbsorbing(3, forward.LogLinear{Eps: 1e-3})
	for _, c := range []struct {
		view, steps string
		calls       int
		lens        []int
	}{
		{"prefix", "shared", 4, []int{8, 8, 16, 16}},
		{"prefix", "per_block", 8, []int{8, 8, 8, 8, 16, 16, 16, 16}},
		{"full", "shared", 4, []int{16, 16, 16, 16}},
		{"full", "per_block", 8, []int{16, 16, 16, 16, 16, 16, 16, 16}},
	} {
		var lens []int
		var seen []float64
		futureMasked := true
		net := toydist.SigmaRecorder(3, &seen)
		wrapped := &spyNet{inner: net, onForward: func(x []int64) {
			lens = append(lens, len(x))
			// While the first block is open (some of 0..7 masked), 8..15 must all be masked.
			if len(x) == 16 && slices.Contains(x[:8], 3) && slices.ContainsFunc(x[8:], func(v int64) bool { return v != 3 }) {
				futureMasked = false
			}
		}}
		cfg := DefaultConfig()
		cfg.BlockLen, cfg.Window, cfg.BlockSampler, cfg.BlockView, cfg.BlockSteps = 8, 16, "ancestral", c.view, c.steps
		res := generate(t, "block", cfg, proc, Net{Model: wrapped, Objective: objective(t, "mdlm", proc, 3)},
			Request{N: 1, Len: 16, Steps: 4, Temperature: 1, TopP: 1, Seed: 1})
		if res.ModelCalls != c.calls || !slices.Equal(lens, c.lens) || !futureMasked {
			t.Errorf("%s/%s: %d calls over lengths %v (future masked %v), want %d over %v", c.view, c.steps, res.ModelCalls, lens, futureMasked, c.calls, c.lens)
		}
	}
	cfg := DefaultConfig()
	cfg.BlockView = "full"
	n := newTinyNets(t, 16)
	if _, err := New("block", cfg, n.uniform, n.d3pm); err == nil || !strings.Contains(err.Error(), "needs the absorbing process") {
		t.Errorf("full view on uniform: %v", err)
	}
}

// spyNet shows every input to onForward before the inner network runs.
type spyNet struct {
	inner     losses.Net
	onForward func(x []int64)
}

func (s *spyNet) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	s.onForward(x.Int64Values())
	return s.inner.Forward(x, sigma, train)
}
