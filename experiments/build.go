package main

import (
	"fmt"
	"log/slog"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

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
	if cfg.Process.Name != "none" {
		p, err := forward.New(cfg.Process, V, dev)
		if err != nil {
			return nil, err
		}
		m.proc = p
	}
	obj, err := losses.New(cfg.Objective, m.proc, V)
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
		VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal, TimeCond: spec.TimeCond})
	if err != nil {
		return nil, err
	}
	m.net = net
	slog.Info("method", "process", cfg.Process.Name, "objective", cfg.Objective.Name,
		"vocab", V, "vocab_in", spec.VocabIn, "vocab_out", spec.VocabOut,
		"causal", spec.Causal, "time_cond", spec.TimeCond, "params", net.NumParams())
	return m, nil
}

// batchTensors uploads a batch: tokens [B,L] int64 and weights [B,L]
// float32 (nil when the batch has none, meaning all ones).
func batchTensors(b train.Batch, dev gotch.Device) (x0, w *ts.Tensor) {
	x0 = ts.MustOfSlice(b.Tokens).MustView([]int64{int64(b.B), int64(b.L)}, true).MustTo(dev, true)
	if len(b.Weights) > 0 {
		w = ts.MustOfSlice(b.Weights).MustView([]int64{int64(b.B), int64(b.L)}, true).MustTo(dev, true)
	}
	return x0, w
}

// stepFunc is the trainer's view of the objective.
func (m *method) stepFunc() train.StepFunc {
	return func(b train.Batch) (*ts.Tensor, map[string]float64, error) {
		x0, w := batchTensors(b, m.dev)
		defer x0.MustDrop()
		if w != nil {
			defer w.MustDrop()
		}
		loss, st, err := m.obj.Loss(m.net, x0, w)
		if err != nil {
			return nil, nil, err
		}
		stats := map[string]float64{"tokens": st.Tokens, "nelbo": st.NELBO, "prior": st.Prior}
		if m.obj.Name() == "d3pm" {
			stats["ce"] = st.CE
		}
		return loss, stats, nil
	}
}

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
