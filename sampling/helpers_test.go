package sampling

import (
	"context"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// tinyV is the vocabulary of the tests that use real (random) transformers.
const tinyV = 40

// tinyModel builds the tiny preset with random weights for spec and a
// rotary table of maxLen positions.
func tinyModel(t testing.TB, spec models.Spec, maxLen int, seed int64) *models.Transformer {
	t.Helper()
	torchx.Seed(seed)
	cfg := models.DefaultConfig()
	cfg.Dropout, cfg.MaxLen = 0, maxLen
	m, err := models.New(nn.NewVarStore(gotch.CPU).Root(), cfg, spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tinyNets are random tiny networks for every objective over tinyV tokens.
type tinyNets struct {
	absorbing, uniform forward.Process
	mdlm, d3pm, sedd   Net // mdlm: absorbing, no time input; d3pm: uniform; sedd: absorbing
	ar                 Net
	bd3lm              Net // absorbing, blocks of tinyBlock
	vdm                Net // gaussian on 8-dimensional embeddings
}

// tinyBlock is the block size of the tiny BD3-LM network.
const tinyBlock = 4

func newTinyNets(t testing.TB, maxLen int) tinyNets {
	t.Helper()
	sched := forward.LogLinear{Eps: 1e-3}
	n := tinyNets{absorbing: forward.NewAbsorbing(tinyV, sched), uniform: forward.NewUniform(tinyV, sched)}
	build := func(name string, proc forward.Process, seed int64) Net {
		cfg := losses.DefaultConfig()
		cfg.Name, cfg.BlockSize = name, tinyBlock
		if name == "d3pm" {
			cfg.Steps = 16
		}
		obj, err := losses.New(cfg, proc, tinyV)
		if err != nil {
			t.Fatal(err)
		}
		spec := obj.Spec()
		m := tinyModel(t, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal, TimeCond: spec.TimeCond, BlockSize: spec.BlockSize}, maxLen, seed)
		return Net{Model: m, Objective: obj}
	}
	n.mdlm = build("mdlm", n.absorbing, 1)
	n.d3pm = build("d3pm", n.uniform, 2)
	n.sedd = build("sedd", n.absorbing, 3)
	n.ar = build("ar", nil, 4)
	n.bd3lm = build("bd3lm", n.absorbing, 5)
	vcfg := losses.DefaultConfig()
	vcfg.Name = "vdm"
	vobj, err := losses.NewVDM(vcfg, forward.Gaussian{Dim: 8, GammaMin: -13.3, GammaMax: 5}, tinyV)
	if err != nil {
		t.Fatal(err)
	}
	vs := vobj.Spec()
	n.vdm = Net{Model: tinyModel(t, models.Spec{VocabIn: vs.VocabIn, VocabOut: vs.VocabOut, TimeCond: true, EmbedDim: vs.EmbedDim}, maxLen, 6), Objective: vobj}
	return n
}

// forSampler picks the process and network a sampler runs with.
func (n tinyNets) forSampler(name string) (forward.Process, Net) {
	switch name {
	case "ar", "ar-nocache":
		return nil, n.ar
	case "sedd-analytic", "sedd-euler":
		return n.absorbing, n.sedd
	case "block-cached":
		return n.absorbing, n.bd3lm
	case "ddpm":
		return nil, n.vdm
	}
	return n.absorbing, n.mdlm
}

// generate builds the sampler and runs req, failing the test on errors.
func generate(t testing.TB, name string, cfg Config, proc forward.Process, net Net, req Request) Result {
	t.Helper()
	s, err := New(name, cfg, proc, net)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
