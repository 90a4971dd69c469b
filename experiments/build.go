package main

import (
	"fmt"
	"log/slog"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/train"
)

// method is one trained variant put together: the forward process (nil for
// the autoregressive baseline), the objective and the network.
type method struct {
	proc forward.Process
	obj  losses.Objective
	net  *models.Transformer
	vs   *nn.VarStore
	dev  gotch.Device
}

// buildMethod builds process, objective and network for V real tokens.
// It seeds libtorch first, so the initial weights depend only on cfg.Seed.
func buildMethod(cfg *Config, V int, dev gotch.Device) (*method, error) {
	m := &method{dev: dev}
	var obj losses.Objective
	var err error
	switch cfg.Process.Name {
	case "gaussian": // the objective owns the Gaussian process
		obj, err = losses.NewVDM(cfg.Objective, cfg.Process.Gaussian(), V)
	case "none":
		obj, err = losses.New(cfg.Objective, nil, V)
	default:
		if m.proc, err = forward.New(cfg.Process, V, dev); err != nil {
			return nil, err
		}
		obj, err = losses.New(cfg.Objective, m.proc, V)
	}
	if err != nil {
		return nil, err
	}
	m.obj = obj
	spec := obj.Spec()
	mcfg, err := cfg.Model.Resolve()
	if err != nil {
		return nil, err
	}
	m.vs = nn.NewVarStore(dev)
	net, err := models.New(m.vs.Root(), mcfg, models.Spec{
		VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal, TimeCond: spec.TimeCond, BlockSize: spec.BlockSize, EmbedDim: spec.EmbedDim})
	if err != nil {
		return nil, err
	}
	m.net = net
	slog.Info("method", "process", cfg.Process.Name, "objective", cfg.Objective.Name,
		"vocab", V, "vocab_in", spec.VocabIn, "vocab_out", spec.VocabOut,
		"causal", spec.Causal, "time_cond", spec.TimeCond, "block_size", spec.BlockSize, "params", net.NumParams())
	return m, nil
}

// stepFunc is the trainer's view of the objective.
func (m *method) stepFunc() train.StepFunc { return losses.TrainStep(m.obj, m.net, m.dev) }

// trainBatches adapts the data iterator to the trainer's Batcher.
type trainBatches struct{ b *data.Batches }

func (t trainBatches) Next() (train.Batch, error) {
	db, err := t.b.Next()
	if err != nil {
		return train.Batch{}, err
	}
	return train.Batch{Tokens: db.Tokens, Weights: db.Mask, B: db.B, L: db.L}, nil
}

func (t trainBatches) State() ([]byte, error) { return t.b.Position().MarshalBinary() }

func (t trainBatches) Restore(state []byte) error {
	var p data.Position
	if err := p.UnmarshalBinary(state); err != nil {
		return fmt.Errorf("data position: %w", err)
	}
	return t.b.Restore(p)
}
