package eval

import (
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// runConfig is the part of a run config a reference checkpoint needs, as
// the config loader dumps it into checkpoint.MetaConfig.
type runConfig struct {
	Model     models.Config `mapstructure:"model"`
	Objective losses.Config `mapstructure:"objective"`
}

// tinyConfig is a one-layer transformer of width 16 for tests.
func tinyConfig() models.Config {
	return models.Config{Preset: "custom", Layers: 1, Width: 16, Heads: 2, MLPRatio: 2, CondDim: 8, MaxLen: 16, Attention: "math"}
}

// tinyTransformer is tinyConfig's model for spec, on the CPU.
func tinyTransformer(t *testing.T, spec models.Spec) (*models.Transformer, *nn.VarStore) {
	t.Helper()
	vs := nn.NewVarStore(gotch.CPU)
	m, err := models.New(vs.Root(), tinyConfig(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return m, vs
}

// tinyCausal is a causal tinyTransformer over v tokens drawn from seed,
// its weights scaled up so that its outputs are far from uniform.
func tinyCausal(t *testing.T, v int, seed int64) (*models.Transformer, *nn.VarStore) {
	t.Helper()
	torchx.Seed(seed)
	m, vs := tinyTransformer(t, models.Spec{VocabIn: v + 1, VocabOut: v, Causal: true})
	torchx.NoGrad(func() {
		for _, p := range vs.TrainableVariables() {
			p.MustMulScalar_(ts.FloatScalar(30)) // distinctive outputs
		}
	})
	return m, vs
}

func logits(net losses.Net, x *ts.Tensor) []float64 {
	var out []float64
	torchx.NoGrad(func() { out = net.Forward(x, nil, false).Float64Values(true) })
	return out
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, a[i]-b[i], b[i]-a[i])
	}
	return d
}

// A trainer-style checkpoint (model and EMA weights, run config and
// vocabulary hash in the metadata) rebuilds the reference with its EMA
// weights; metadata that cannot be trusted is refused.
func TestLoadReference(t *testing.T) {
	torchx.Lock()
	vocab := trimmedVocab(t, 0, "the cat sat on the mat")
	v := vocab.Size()
	trained, trainedVS := tinyCausal(t, v, 1)
	ema, emaVS := tinyCausal(t, v, 2)
	tensors := map[string]*ts.Tensor{}
	for prefix, vs := range map[string]*nn.VarStore{checkpoint.PrefixModel: trainedVS, checkpoint.PrefixEMA: emaVS} {
		vars, err := checkpoint.Vars(vs)
		if err != nil {
			t.Fatal(err)
		}
		for name, x := range vars {
			tensors[prefix+name] = x
		}
	}
	rc := runConfig{Model: tinyConfig(), Objective: losses.DefaultConfig()}
	rc.Objective.Name = "ar"
	yamlAR, err := config.Dump(rc)
	if err != nil {
		t.Fatal(err)
	}
	rc.Objective.Name = "mdlm"
	yamlMDLM, _ := config.Dump(rc)
	dir := t.TempDir()
	save := func(name string, meta map[string]string) string {
		path := dir + "/" + name + ".safetensors"
		if err := checkpoint.Save(path, tensors, meta); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := save("good", map[string]string{checkpoint.MetaConfig: yamlAR, checkpoint.MetaVocabHash: vocab.Hash()})
	ref, err := LoadReference(good, vocab, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	bos := int64(v)
	x := ts.MustOfSlice([]int64{bos, 0, 1, 2, 1, bos, 3, 3}).MustView([]int64{2, 4}, true)
	got, wantEMA, notModel := logits(ref.Net, x), logits(ema, x), logits(trained, x)
	if d := maxDiff(got, wantEMA); d > 1e-5 {
		t.Errorf("loaded reference differs from the EMA weights by %g", d)
	}
	if d := maxDiff(got, notModel); d < 1e-2 {
		t.Errorf("loaded reference matches the trained (non-EMA) weights: difference %g", d)
	}
	if ref.Vocab != v || ref.MaxLen != 16 {
		t.Errorf("reference V=%d max_len=%d, want %d and 16", ref.Vocab, ref.MaxLen, v)
	}
	other := trimmedVocab(t, 0, "a dog and a log")
	for _, c := range []struct {
		name  string
		meta  map[string]string
		vocab bool // use the other vocabulary
		err   string
	}{
		{"no-hash", map[string]string{checkpoint.MetaConfig: yamlAR}, false, `no "vocab_hash" metadata`},
		{"other-vocab", map[string]string{checkpoint.MetaConfig: yamlAR, checkpoint.MetaVocabHash: vocab.Hash()}, true, "vocabulary mismatch"},
		{"no-config", map[string]string{checkpoint.MetaVocabHash: vocab.Hash()}, false, `no "config" metadata`},
		{"mdlm", map[string]string{checkpoint.MetaConfig: yamlMDLM, checkpoint.MetaVocabHash: vocab.Hash()}, false, `objective.name is "mdlm"`},
	} {
		vv := vocab
		if c.vocab {
			vv = other
		}
		_, err := LoadReference(save(c.name, c.meta), vv, gotch.CPU)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
	}
}
