package train

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/sugarme/gotch/ts"
)

// save writes the checkpoint of the current step (model, EMA, AdamW
// moments, step, data position and the caller's metadata) and prunes old
// ones.
func (t *Trainer) save(batches Batcher) error {
	if t.rank() != 0 { // rank 0 writes for the job
		t.saved = t.step
		return nil
	}
	state, err := batches.State()
	if err != nil {
		return fmt.Errorf("train: step %d: data position: %w", t.step, err)
	}
	tensors := map[string]*ts.Tensor{}
	for name, v := range t.vars {
		tensors[checkpoint.PrefixModel+name] = v
	}
	for i, name := range t.trainable {
		tensors[checkpoint.PrefixOptM+name] = t.opt.m[i]
		tensors[checkpoint.PrefixOptV+name] = t.opt.v[i]
		if t.ema != nil {
			tensors[checkpoint.PrefixEMA+name] = t.ema.shadow[i]
		}
	}
	meta := map[string]string{}
	for k, v := range t.meta {
		meta[k] = v
	}
	meta[checkpoint.MetaStep] = strconv.Itoa(t.step)
	meta[checkpoint.MetaDataState] = base64.StdEncoding.EncodeToString(state)
	path := checkpoint.Path(t.runDir, t.step)
	if err := checkpoint.Save(path, tensors, meta); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	t.saved = t.step
	slog.Info("train: checkpoint", "path", path)
	if err := checkpoint.Prune(t.runDir, t.cfg.KeepLast); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// resume loads the checkpoint train.resume asks for, if any.
func (t *Trainer) resume() error {
	path, err := t.resumePath()
	if err != nil || path == "" {
		return err
	}
	r, err := checkpoint.Open(path)
	if err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	defer r.Close()
	meta := r.Meta()
	step, err := strconv.Atoi(meta[checkpoint.MetaStep])
	if err != nil || step < 0 {
		return fmt.Errorf("train: resume: checkpoint %s: metadata step %q is not a step number", path, meta[checkpoint.MetaStep])
	}
	state, err := base64.StdEncoding.DecodeString(meta[checkpoint.MetaDataState])
	if err != nil {
		return fmt.Errorf("train: resume: checkpoint %s: data state: %w", path, err)
	}
	for name, v := range t.vars {
		if err := r.CopyInto(checkpoint.PrefixModel+name, v); err != nil {
			return fmt.Errorf("train: resume: %w", err)
		}
	}
	for i, name := range t.trainable {
		if err := r.CopyInto(checkpoint.PrefixOptM+name, t.opt.m[i]); err != nil {
			return fmt.Errorf("train: resume: %w", err)
		}
		if err := r.CopyInto(checkpoint.PrefixOptV+name, t.opt.v[i]); err != nil {
			return fmt.Errorf("train: resume: %w", err)
		}
	}
	if err := t.resumeEMA(r); err != nil {
		return fmt.Errorf("train: resume: %w", err)
	}
	t.step, t.opt.t, t.saved, t.dataState = step, step, step, state
	for k, v := range t.meta {
		if meta[k] != v {
			slog.Warn("train: resuming with different metadata than the checkpoint's", "key", k, "checkpoint", path)
		}
	}
	slog.Info("train: resumed", "checkpoint", path, "step", step)
	return nil
}

// resumeEMA restores the averages; a checkpoint from a run without EMA
// starts them from the loaded weights.
func (t *Trainer) resumeEMA(r *checkpoint.Reader) error {
	if t.ema == nil {
		return nil
	}
	if !r.Has(checkpoint.PrefixEMA + t.trainable[0]) {
		slog.Warn("train: checkpoint has no EMA weights; the average starts from the loaded weights", "checkpoint", r.Path())
		t.ema.reset()
		return nil
	}
	for i, name := range t.trainable {
		if err := r.CopyInto(checkpoint.PrefixEMA+name, t.ema.shadow[i]); err != nil {
			return err
		}
	}
	return nil
}

// resumePath returns the checkpoint to resume from, or "" to start fresh.
func (t *Trainer) resumePath() (string, error) {
	switch t.cfg.Resume {
	case "never":
		entries, err := checkpoint.List(t.runDir)
		if err != nil {
			return "", fmt.Errorf("train: %w", err)
		}
		if len(entries) > 0 {
			return "", fmt.Errorf("train.resume is never, but %s already holds checkpoints (newest %s): use another run folder or resume: auto",
				t.runDir, entries[len(entries)-1].Path)
		}
		return "", nil
	case "auto":
		path, err := checkpoint.Latest(t.runDir)
		if errors.Is(err, checkpoint.ErrNotFound) {
			return "", nil
		}
		return path, err
	}
	return t.cfg.Resume, nil
}
