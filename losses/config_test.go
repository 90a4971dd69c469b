package losses

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/torchx"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"mdlm finite T", func(c *Config) { c.Steps = 1000 }, ""},
		{"d3pm", func(c *Config) { c.Name, c.Steps, c.D3PMForm = "d3pm", 1000, "mixture" }, ""},
		{"bad name", func(c *Config) { c.Name = "ddpm" }, `objective.name: "ddpm" is not one of mdlm|d3pm|sedd|bd3lm|vdm|ar`},
		{"bd3lm", func(c *Config) { c.Name, c.BlockSize, c.ClipMin, c.ClipMax = "bd3lm", 4, 0.3, 0.8 }, ""},
		{"bd3lm without blocks", func(c *Config) { c.Name, c.BlockSize = "bd3lm", 0 }, "objective.block_size: 0: bd3lm needs blocks of at least 1 token"},
		{"bd3lm with steps", func(c *Config) { c.Name, c.Steps = "bd3lm", 10 }, "objective.steps: bd3lm is continuous-time only (steps: 0), got 10"},
		{"empty window", func(c *Config) { c.Name, c.ClipMin, c.ClipMax = "bd3lm", 0.5, 0.5 }, "objective.clip_min: [0.5, 0.5] is not a window 0 ≤ clip_min < clip_max ≤ 1"},
		{"window for mdlm", func(c *Config) { c.ClipMin = 0.2 }, "objective.clip_min: the clipped schedule [0.2, 1] is bd3lm's (objective.name: bd3lm), got mdlm"},
		{"negative steps", func(c *Config) { c.Steps = -1 }, "objective.steps: -1 is negative"},
		{"d3pm without steps", func(c *Config) { c.Name = "d3pm" }, "objective.steps: d3pm is discrete-time and needs steps ≥ 1, got 0"},
		{"sedd with steps", func(c *Config) { c.Name, c.Steps = "sedd", 100 }, "objective.steps: sedd is continuous-time only (steps: 0), got 100"},
		{"ar with steps", func(c *Config) { c.Name, c.Steps = "ar", 5 }, "objective.steps: ar has no diffusion steps (steps: 0), got 5"},
		{"negative lambda", func(c *Config) { c.HybridLambda = -0.5 }, "objective.hybrid_lambda: -0.5 must be a finite number ≥ 0"},
		{"bad form", func(c *Config) { c.D3PMForm = "x0" }, `objective.d3pm_form: "x0" is not one of proportional|mixture`},
		{"bad t sampling", func(c *Config) { c.TSampling = "sobol" }, `objective.t_sampling: "sobol" is not one of uniform|antithetic`},
		{"chunked cross-entropy", func(c *Config) { c.CEChunk = 4096 }, ""},
		{"negative chunk", func(c *Config) { c.CEChunk = -1 }, "objective.ce_chunk: -1 is negative (0: no chunking)"},
		{"chunked sedd", func(c *Config) { c.Name, c.CEChunk = "sedd", 64 }, "objective.ce_chunk: chunked cross-entropy is for mdlm|bd3lm|ar (a softmax over the clean tokens), got sedd"},
		{"two at once", func(c *Config) { c.Name, c.TSampling = "sedd", "" },
			"objective.t_sampling: \"\" is not one of uniform|antithetic"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		got := ""
		if err := cfg.Validate(); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s: Validate() = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestValidatePair(t *testing.T) {
	cases := []struct{ proc, obj, want string }{
		{"absorbing", "mdlm", ""},
		{"uniform", "mdlm", "objective.name: mdlm needs process.name: absorbing, got uniform"},
		{"embedding", "mdlm", "objective.name: mdlm needs process.name: absorbing, got embedding"},
		{"none", "mdlm", "objective.name: mdlm needs process.name: absorbing, got none"},
		{"absorbing", "d3pm", ""},
		{"uniform", "d3pm", ""},
		{"embedding", "d3pm", ""},
		{"none", "d3pm", "objective.name: d3pm needs a discrete process (process.name: absorbing|uniform|embedding), got none"},
		{"absorbing", "sedd", ""},
		{"uniform", "sedd", ""},
		{"embedding", "sedd", ""},
		{"none", "sedd", "objective.name: sedd needs a discrete process (process.name: absorbing|uniform|embedding), got none"},
		{"none", "ar", ""},
		{"absorbing", "ar", "objective.name: ar takes no process (process.name: none), got absorbing"},
		{"gaussian", "sedd", "objective.name: sedd needs a discrete process (process.name: absorbing|uniform|embedding), got gaussian"},
		{"absorbing", "gpt", `objective.name: "gpt" is not one of mdlm|d3pm|sedd|bd3lm|vdm|ar`},
	}
	for _, c := range cases {
		got := ""
		if err := ValidatePair(c.proc, c.obj); err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("ValidatePair(%s, %s) = %q, want %q", c.proc, c.obj, got, c.want)
		}
	}
}

func TestNewAndCallErrors(t *testing.T) {
	torchx.Lock()
	ll := forward.LogLinear{Eps: 1e-3}
	check := func(what string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", what, err, want)
		}
	}
	cfg := DefaultConfig()
	_, err := New(cfg, forward.NewUniform(5, ll), 5)
	check("mdlm on uniform", err, "objective.name: mdlm needs process.name: absorbing, got uniform")
	_, err = New(cfg, nil, 5)
	check("mdlm without process", err, "objective.name: mdlm needs process.name: absorbing, got none")
	_, err = New(cfg, forward.NewAbsorbing(6, ll), 5)
	check("vocabulary mismatch", err, "objective: process over V=6 tokens, data vocabulary V=5")
	bad := cfg
	bad.TSampling = "halton"
	_, err = New(bad, forward.NewAbsorbing(5, ll), 5)
	check("invalid config", err, `objective.t_sampling: "halton" is not one of uniform|antithetic`)

	obj, err := New(cfg, forward.NewAbsorbing(5, ll), 5)
	if err != nil {
		t.Fatal(err)
	}
	x0 := ts.MustZeros([]int64{2, 3}, gotch.Int64, gotch.CPU)
	_, err = obj.NELBO(newLinearNet(obj.Spec(), 4, 1, gotch.Float), x0, nil, []float64{0.5})
	check("draw count", err, "mdlm nelbo: 1 draws for a batch of 2 sequences")
	wrong := newLinearNet(NetSpec{VocabIn: 6, VocabOut: 6}, 4, 1, gotch.Float)
	_, _, err = obj.Loss(wrong, x0, nil)
	check("logit shape", err, "mdlm loss: network returned logits of shape [2 3 6], want [2 3 5]")
	_, _, err = obj.Loss(wrong, x0, ts.MustOnes([]int64{3, 2}, gotch.Float, gotch.CPU))
	check("weights shape", err, "mdlm loss: weights of shape [3 2] for x0 of shape [2 3]")
	_, _, err = obj.Loss(wrong, ts.MustZeros([]int64{2, 3}, gotch.Float, gotch.CPU), nil)
	check("x0 dtype", err, "mdlm loss: x0 of shape [2 3] and dtype Float, want [B,L] int64")
}

// The sampler-facing outputs: MDLM's SUBS log-probabilities and SEDD's
// shifted log-scores with the self score set to 1.
func TestSamplerOutputs(t *testing.T) {
	torchx.Lock()
	ll := forward.LogLinear{Eps: 1e-3}
	const v = 4
	xt := ts.MustOfSlice([]int64{v, 2, 0, v}).MustView([]int64{1, 4}, true)
	raw := func(out int) *toydist.TableNet {
		return &toydist.TableNet{Out: out, Fn: func(x []int64, _ float64) [][]float64 {
			rows := make([][]float64, len(x))
			for i := range rows {
				for y := range out {
					rows[i] = append(rows[i], float64(i+y)/4)
				}
			}
			return rows
		}}
	}
	m, err := New(DefaultConfig(), forward.NewAbsorbing(v, ll), v)
	if err != nil {
		t.Fatal(err)
	}
	logp, err := m.(Denoiser).LogX0(raw(v), xt, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := logp.Float64Values()
	for i, tok := range []int64{v, 2, 0, v} {
		lse := 0.0
		for y := range v {
			lse += math.Exp(float64(i+y) / 4)
		}
		for y := range v {
			want := float64(i+y)/4 - math.Log(lse)
			if tok != v {
				want = logZero
				if int64(y) == tok {
					want = 0
				}
			}
			if math.Abs(got[i*v+y]-want) > 1e-12 {
				t.Errorf("LogX0[%d][%d] = %g, want %g", i, y, got[i*v+y], want)
			}
		}
	}

	cfg := DefaultConfig()
	cfg.Name = "sedd"
	e, err := New(cfg, forward.NewAbsorbing(v, ll), v)
	if err != nil {
		t.Fatal(err)
	}
	const sigma = 0.7
	ls, err := e.(Scorer).LogScores(raw(v+1), xt, []float64{sigma})
	if err != nil {
		t.Fatal(err)
	}
	got = ls.Float64Values()
	shift := -math.Log(math.Expm1(sigma)) - math.Log(v)
	for i, tok := range []int64{v, 2, 0, v} {
		for y := range v + 1 {
			want := float64(i+y)/4 + shift
			if int64(y) == tok {
				want = 0
			}
			if math.Abs(got[i*(v+1)+y]-want) > 1e-6 { // σ reaches the net as float32
				t.Errorf("LogScores[%d][%d] = %g, want %g", i, y, got[i*(v+1)+y], want)
			}
		}
	}
}
