package checkpoint

import (
	"fmt"
	"log/slog"

	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Name spaces of a training checkpoint: the model's variables, their
// exponential moving average, and AdamW's first and second moments, each
// followed by the variable's VarStore name ("model.blocks.0.attn.wq").
const (
	PrefixModel = "model."
	PrefixEMA   = "ema."
	PrefixOptM  = "opt.m."
	PrefixOptV  = "opt.v."
)

// Vars returns the variables of vs by name. The tensors are the VarStore's
// own (not copies): writing into them changes the model.
func Vars(vs *nn.VarStore) (map[string]*ts.Tensor, error) {
	out := map[string]*ts.Tensor{}
	for name := range vs.Variables() {
		t, err := vs.Root().Get(name)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// ExportModel writes the variables of vs under their plain names (no
// "model." prefix), which is what PyTorch code expects of a state dict:
// safetensors.torch.load_file(path) returns {name: tensor} ready for
// model.load_state_dict. Pass the EMA weights by exporting inside the
// trainer's WithEMA.
func ExportModel(path string, vs *nn.VarStore, meta map[string]string) error {
	vars, err := Vars(vs)
	if err != nil {
		return fmt.Errorf("export model %s: %w", path, err)
	}
	return Save(path, vars, meta)
}

// LoadInto copies weights from a checkpoint into every variable of vs, for
// evaluation or sampling, and returns the checkpoint's metadata. prefer is
// "ema" or "model": with "ema" each variable takes its EMA weights when the
// checkpoint has them and its model weights otherwise (buffers, or a run
// trained without EMA). Files written by ExportModel (plain names) load too.
func LoadInto(vs *nn.VarStore, path string, prefer string) (map[string]string, error) {
	if prefer != "ema" && prefer != "model" {
		return nil, fmt.Errorf("load %s: prefer %q, want ema or model", path, prefer)
	}
	r, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	vars, err := Vars(vs)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	fromEMA := 0
	for name, v := range vars {
		candidates := []string{PrefixModel + name, name}
		if prefer == "ema" {
			candidates = append([]string{PrefixEMA + name}, candidates...)
		}
		found := ""
		for _, c := range candidates {
			if r.Has(c) {
				found = c
				break
			}
		}
		if found == "" {
			return nil, fmt.Errorf("checkpoint %s: no weights for variable %s", path, name)
		}
		if err := r.CopyInto(found, v); err != nil {
			return nil, err
		}
		if found == PrefixEMA+name {
			fromEMA++
		}
	}
	slog.Info("loaded weights", "path", path, "variables", len(vars), "from_ema", fromEMA)
	return r.Meta(), nil
}
