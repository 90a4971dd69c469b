package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sort"
	"time"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// ErrNonFinite marks a run stopped by a NaN or infinite loss or gradient.
// The update of that step is not applied and no checkpoint is written, so
// the newest checkpoint holds the last good weights.
var ErrNonFinite = errors.New("non-finite value")

// Trainer optimises the variables of one VarStore in one run folder.
type Trainer struct {
	// Progress receives the progress bar (a terminal) or progress lines
	// (anything else). New sets os.Stderr; nil silences it.
	Progress io.Writer

	cfg       Config
	runDir    string
	meta      map[string]string
	precision string
	vars      map[string]*ts.Tensor // every variable of the VarStore
	trainable []string              // names of the trainable ones, sorted
	params    []*ts.Tensor          // their tensors, in the same order
	flat      *flat                 // params and their gradients, laid out in one buffer each
	opt       *adamW
	ema       *ema // nil when train.ema is 0
	step      int  // completed optimizer steps
	saved     int  // step of the newest checkpoint written or loaded, -1 if none
	dataState []byte
	coll      Collective // nil: one process (see Distribute)
}

// New prepares training of the variables in vs, which must already hold the
// whole model, writing checkpoints to runDir. meta is copied into every
// checkpoint (the run's config YAML, the vocabulary hash and path: see the
// checkpoint.Meta* keys). With train.resume auto or a path, New loads the
// model, optimizer, EMA and step from the checkpoint; Run restores the data
// position. Call it, and Run, on a goroutine that does all torch work
// (torchx.Lock).
func New(cfg Config, vs *nn.VarStore, runDir string, meta map[string]string) (*Trainer, error) {
	torchx.Lock()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dev, err := torchx.ParseDevice(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("train.device: %w", err)
	}
	if got, want := torchx.DeviceName(vs.Device()), torchx.DeviceName(dev); got != want {
		return nil, fmt.Errorf("train.device %q means %s, but the model's variables live on %s", cfg.Device, want, got)
	}
	precision, err := resolvePrecision(cfg.Precision, dev)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{checkpoint.MetaStep, checkpoint.MetaDataState} {
		if _, ok := meta[k]; ok {
			return nil, fmt.Errorf("train: metadata key %q is written by the trainer", k)
		}
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: run folder: %w", err)
	}
	torchx.SetThreads(cfg.Threads)

	vars, err := checkpoint.Vars(vs)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t := &Trainer{Progress: os.Stderr, cfg: cfg, runDir: runDir, meta: map[string]string{},
		precision: precision, vars: vars, saved: -1}
	for k, v := range meta {
		t.meta[k] = v
	}
	for name, v := range vars {
		if v.MustRequiresGrad() {
			t.trainable = append(t.trainable, name)
		}
	}
	if len(t.trainable) == 0 {
		return nil, fmt.Errorf("train: the VarStore has no trainable variables")
	}
	sort.Strings(t.trainable)
	for _, name := range t.trainable {
		t.params = append(t.params, vars[name])
	}
	if t.flat, err = newFlat(t.params); err != nil {
		return nil, err
	}
	t.opt = newAdamW(t.flat, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
	if cfg.EMA > 0 {
		t.ema = newEMA(t.flat, cfg.EMA)
	}
	if err := t.resume(); err != nil {
		return nil, err
	}
	numel := 0
	for _, p := range t.params {
		numel += int(p.Numel())
	}
	slog.Info("train: ready", "run", runDir, "device", torchx.DeviceName(dev), "precision", precision,
		"threads", torchx.Threads(), "params", numel, "step", t.step, "steps", cfg.Steps)
	if w := cfg.initialEMAWeight(); w > 0.01 {
		slog.Warn("train: the EMA weights that evaluation and sampling use will still hold this much of the initial (random) weights at the end; lower train.ema or train longer",
			"share", w, "ema", cfg.EMA, "steps", cfg.Steps)
	}
	return t, nil
}

// Step is the number of completed optimizer steps.
func (t *Trainer) Step() int { return t.step }

// Precision is the precision in use: fp32 or bf16.
func (t *Trainer) Precision() string { return t.precision }

// WithEMA runs fn with the EMA weights in the model, as evaluation and
// sampling should, and puts the trained weights back afterwards (also when
// fn fails or panics). With EMA off, fn sees the trained weights.
func (t *Trainer) WithEMA(fn func() error) error {
	if t.ema == nil {
		return fn()
	}
	t.ema.swap()
	defer t.ema.swap()
	return fn()
}

// Run trains until train.steps, checkpointing every train.ckpt_every steps
// and at the end, handing metrics to sink (may be nil) every train.log_every
// steps and calling eval (may be nil) every train.eval_every steps. When ctx
// is cancelled (SIGINT) it finishes the current step, writes a checkpoint
// and returns an error wrapping ctx.Err(). A NaN or infinite loss or
// gradient returns an error wrapping ErrNonFinite that names the step.
func (t *Trainer) Run(ctx context.Context, batches Batcher, step StepFunc, sink MetricSink, eval EvalFunc) error {
	torchx.Lock()
	if t.dataState != nil {
		if err := batches.Restore(t.dataState); err != nil {
			return fmt.Errorf("train: restore the data position of step %d: %w", t.step, err)
		}
		t.dataState = nil
	}
	if t.step >= t.cfg.Steps {
		slog.Info("train: nothing to do", "step", t.step, "steps", t.cfg.Steps)
		return nil
	}
	began := time.Now()
	prog := newProgress(t.Progress, t.step, t.cfg.Steps, t.cfg.LogEvery)
	defer prog.finish()
	win := newWindow(began)
	for t.step < t.cfg.Steps {
		if ctx.Err() != nil {
			return t.stop(batches, fmt.Errorf("train: interrupted after step %d: %w", t.step, ctx.Err()))
		}
		loss, tokens, err := t.optimizerStep(batches, step, win)
		if err != nil {
			return err
		}
		s, lr := t.step, t.cfg.LRAt(t.step)
		prog.update(s, loss, lr, tokens)
		if s%t.cfg.LogEvery == 0 || s == t.cfg.Steps {
			if sink != nil {
				if err := sink.LogMetrics(s, "train", win.metrics(lr, time.Now())); err != nil {
					return t.stop(batches, fmt.Errorf("train: step %d: log metrics: %w", s, err))
				}
			}
			win = newWindow(time.Now())
		}
		if eval != nil && t.cfg.EvalEvery > 0 && (s%t.cfg.EvalEvery == 0 || s == t.cfg.Steps) {
			if err := t.evaluate(eval, sink); err != nil {
				return t.stop(batches, err)
			}
		}
		if (t.cfg.CkptEvery > 0 && s%t.cfg.CkptEvery == 0) || s == t.cfg.Steps {
			if err := t.save(batches); err != nil {
				return err
			}
		}
	}
	prog.finish()
	slog.Info("train: done", "step", t.step, "elapsed", time.Since(began).Round(time.Second))
	return nil
}

// stop checkpoints the last completed step (unless already saved) and
// returns cause, for ways out of Run that leave the state consistent.
func (t *Trainer) stop(batches Batcher, cause error) error {
	if t.step > 0 && t.saved != t.step {
		if err := t.save(batches); err != nil {
			return errors.Join(cause, err)
		}
	}
	return cause
}

// optimizerStep runs one step: seed, batch, forward and backward over the
// micro-batches, clipping, AdamW, EMA. It returns the batch's loss and the
// number of tokens processed.
func (t *Trainer) optimizerStep(batches Batcher, fn StepFunc, win *window) (float64, int, error) {
	s := t.step + 1
	torchx.Seed(torchx.MixSeed(t.cfg.Seed+uint64(t.rank())*rankSeedStride, s))
	global, err := batches.Next()
	if err != nil {
		return 0, 0, fmt.Errorf("train: step %d: next batch: %w", s, err)
	}
	if err := global.check(t.cfg.BatchSize); err != nil {
		return 0, 0, fmt.Errorf("train: step %d: %w", s, err)
	}
	b := t.share(global)
	t.flat.zeroGrad()
	loss := 0.0
	for lo := 0; lo < b.B; lo += t.cfg.micro() {
		mb := b.Rows(lo, min(lo+t.cfg.micro(), b.B))
		frac := float64(mb.B) / float64(b.B)
		l, err := t.backward(fn, mb, frac, win)
		if err != nil {
			return 0, 0, fmt.Errorf("train: step %d: %w%s", s, err, t.lastGood())
		}
		loss += frac * l
	}
	if err := t.reduceGrads(); err != nil {
		return 0, 0, fmt.Errorf("train: step %d: average the gradients: %w", s, err)
	}
	if loss, err = t.meanOverRanks(loss); err != nil {
		return 0, 0, fmt.Errorf("train: step %d: average the loss: %w", s, err)
	}
	norm := clipGradNorm(t.params, t.cfg.ClipNorm)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return 0, 0, fmt.Errorf("train: step %d: gradient norm is %v (%w)%s", s, norm, ErrNonFinite, t.lastGood())
	}
	t.opt.step(t.cfg.LRAt(s), t.ema)
	t.step = s
	win.addStep(loss, norm, global.B*global.L)
	return loss, global.B * global.L, nil
}

// backward computes one micro-batch's loss (under autocast for bf16) and
// backpropagates it scaled by frac, its share of the batch's rows.
func (t *Trainer) backward(fn StepFunc, b Batch, frac float64, win *window) (float64, error) {
	var l Loss
	call := func() (err error) {
		l, err = fn(b)
		return err
	}
	var err error
	if t.precision == "bf16" {
		err = autocast(call)
	} else {
		err = call()
	}
	if err != nil {
		return 0, err
	}
	loss := l.Value
	defer loss.MustDrop()
	v, err := item(loss)
	if err != nil {
		return 0, fmt.Errorf("loss: %w", err)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("loss is %v (%w)", v, ErrNonFinite)
	}
	scaled := loss
	if frac != 1 {
		scaled = loss.MustMulScalar(ts.FloatScalar(frac), false)
		defer scaled.MustDrop()
	}
	if err := scaled.Backward(); err != nil {
		return 0, fmt.Errorf("backward: %w", err)
	}
	if l.Finish != nil {
		if err := l.Finish(); err != nil {
			return 0, fmt.Errorf("backward: %w", err)
		}
	}
	win.addMicro(l.Stats, b.B)
	return v, nil
}

// lastGood names the checkpoint a failed run can resume from.
func (t *Trainer) lastGood() string {
	if t.saved < 0 {
		return "; no checkpoint was written"
	}
	return fmt.Sprintf("; stopped before the update, the last checkpoint %s is intact", checkpoint.Path(t.runDir, t.saved))
}

func (t *Trainer) evaluate(eval EvalFunc, sink MetricSink) error {
	var m map[string]float64
	err := t.WithEMA(func() error {
		var err error
		torchx.NoGrad(func() { m, err = eval(t.step) })
		return err
	})
	if err != nil {
		return fmt.Errorf("train: eval at step %d: %w", t.step, err)
	}
	args := []any{"step", t.step}
	for _, k := range sortedKeys(m) {
		args = append(args, k, m[k])
	}
	slog.Info("train: eval", args...)
	if sink != nil {
		if err := sink.LogMetrics(t.step, "valid", m); err != nil {
			return fmt.Errorf("train: eval at step %d: log metrics: %w", t.step, err)
		}
	}
	return nil
}

// item reads the value of a one-element tensor.
func item(x *ts.Tensor) (float64, error) {
	if n := x.Numel(); n != 1 {
		return 0, fmt.Errorf("want a scalar, got shape %v", x.MustSize())
	}
	flat, err := x.Reshape([]int64{1}, false)
	if err != nil {
		return 0, err
	}
	defer flat.MustDrop()
	return flat.Float64Value([]int64{0})
}

// rankSeedStride separates the ranks' seeds: rank r seeds its steps as a
// single process with seed + r·stride would, rank 0 as the run's own.
const rankSeedStride = 0x5851f42d4c957f2d

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
