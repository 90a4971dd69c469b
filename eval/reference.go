package eval

import (
	"fmt"

	"github.com/go-viper/mapstructure/v2"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"go.yaml.in/yaml/v3"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// Reference is the causal model that scores generated text (generative
// perplexity). It reads losses.ARInput: BOS = V, then the tokens.
type Reference struct {
	Net   losses.Net
	Vocab int // V, the real tokens it predicts
	// EOS is the end-of-text id, which MDLM's generative perplexity counts
	// once per sample (its first occurrence); negative for none.
	EOS    int
	MaxLen int // the longest sequence it takes; 0 = unchecked
	// Device is where Net's parameters live; the zero value is the CPU.
	Device gotch.Device
	vs     *nn.VarStore
}

// LoadReference builds the AR reference from a training checkpoint alone:
// its metadata holds the run's configuration (checkpoint.MetaConfig, the
// YAML of the whole run config), from which the `model:` section gives the
// architecture and `objective.name` must be ar, and the hash of its
// vocabulary (checkpoint.MetaVocabHash), which must be vocab's, the
// vocabulary of the samples it will score. The weights are the EMA ones
// where the checkpoint has them.
func LoadReference(path string, vocab *data.Vocab, device gotch.Device) (*Reference, error) {
	torchx.Lock()
	r, err := checkpoint.Open(path)
	if err != nil {
		return nil, fmt.Errorf("eval.ar_reference: %w", err)
	}
	meta := r.Meta()
	r.Close()
	hash, ok := meta[checkpoint.MetaVocabHash]
	if !ok {
		return nil, fmt.Errorf("eval.ar_reference: checkpoint %s has no %q metadata, so its vocabulary cannot be checked against the samples'", path, checkpoint.MetaVocabHash)
	}
	if err := vocab.Verify(hash); err != nil {
		return nil, fmt.Errorf("eval.ar_reference: checkpoint %s: %w", path, err)
	}
	cfg, err := referenceConfig(meta[checkpoint.MetaConfig])
	if err != nil {
		return nil, fmt.Errorf("eval.ar_reference: checkpoint %s: %w", path, err)
	}
	spec, err := losses.SpecFor("none", "ar", vocab.Size())
	if err != nil {
		return nil, err
	}
	vs := nn.NewVarStore(device)
	net, err := models.New(vs.Root(), cfg, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal})
	if err == nil {
		_, err = checkpoint.LoadInto(vs, path, "ema")
	}
	if err != nil {
		vs.Destroy()
		return nil, fmt.Errorf("eval.ar_reference: %w", err)
	}
	return &Reference{Net: net, Vocab: vocab.Size(), EOS: vocab.EOS(), MaxLen: cfg.MaxLen, Device: device, vs: vs}, nil
}

// referenceConfig reads the model section of a run config's YAML and
// checks that the run trained the ar objective.
func referenceConfig(text string) (models.Config, error) {
	if text == "" {
		return models.Config{}, fmt.Errorf("no %q metadata (the run config): cannot rebuild the model", checkpoint.MetaConfig)
	}
	var doc struct {
		Model     map[string]any `yaml:"model"`
		Objective struct {
			Name string `yaml:"name"`
		} `yaml:"objective"`
	}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return models.Config{}, fmt.Errorf("metadata %q: %w", checkpoint.MetaConfig, err)
	}
	if doc.Objective.Name != "ar" {
		return models.Config{}, fmt.Errorf("objective.name is %q, a reference must be an ar model", doc.Objective.Name)
	}
	if doc.Model == nil {
		return models.Config{}, fmt.Errorf("metadata %q has no model section", checkpoint.MetaConfig)
	}
	cfg := models.DefaultConfig()
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{Result: &cfg, ErrorUnused: true})
	if err != nil {
		return models.Config{}, err
	}
	if err := dec.Decode(doc.Model); err != nil {
		return models.Config{}, fmt.Errorf("model section: %w", err)
	}
	return cfg.Resolve()
}

// Close frees the reference's weights (those LoadReference loaded).
func (r *Reference) Close() {
	if r.vs != nil {
		r.vs.Destroy()
		r.vs = nil
	}
}
