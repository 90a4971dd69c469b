// Package train is the training engine: AdamW on tensors, a warmup-then-
// constant-or-cosine learning rate, gradient clipping and accumulation, an
// EMA of the weights, per-step seeding, atomic checkpoints that resume a
// killed run exactly, and progress on the terminal. It knows nothing about
// models or diffusion: the caller hands it a VarStore, a Batcher and a
// StepFunc that turns a batch into a loss.
package train

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// Batch is B sequences of L tokens, row-major; Weights (B×L, or empty for
// all ones) is 0 at padding.
type Batch struct {
	Tokens  []int64
	Weights []float32
	B, L    int
}

// Rows returns rows [lo, hi) of b, sharing its memory.
func (b Batch) Rows(lo, hi int) Batch {
	out := Batch{Tokens: b.Tokens[lo*b.L : hi*b.L], B: hi - lo, L: b.L}
	if len(b.Weights) > 0 {
		out.Weights = b.Weights[lo*b.L : hi*b.L]
	}
	return out
}

// check verifies the shape of a batch against the configured batch size.
func (b Batch) check(rows int) error {
	if b.B != rows || b.L <= 0 {
		return fmt.Errorf("batch is %d×%d, train.batch_size is %d", b.B, b.L, rows)
	}
	if len(b.Tokens) != b.B*b.L {
		return fmt.Errorf("batch %d×%d holds %d tokens", b.B, b.L, len(b.Tokens))
	}
	if len(b.Weights) != 0 && len(b.Weights) != b.B*b.L {
		return fmt.Errorf("batch %d×%d holds %d weights", b.B, b.L, len(b.Weights))
	}
	return nil
}

// Batcher yields training batches; its position is saved in checkpoints.
// State must capture everything Next depends on, so that Restore(State())
// in a new process continues with the same batches.
type Batcher interface {
	Next() (Batch, error)
	State() ([]byte, error)
	Restore(state []byte) error
}

// StepFunc computes one micro-batch's Loss.
type StepFunc func(b Batch) (Loss, error)

// Loss is what a StepFunc returns for one micro-batch: the scalar to
// backpropagate (the trainer drops it after backward; the function frees
// its other intermediates) and named stats (e.g. "nll_bound", "tokens") to
// log.
//
// Stats are averaged over micro-batches and logging windows, weighted by the
// micro-batch's "tokens" stat when it reports one (so a per-token mean is
// averaged per token) and by its rows otherwise; "tokens" itself is logged
// as the mean per optimizer step.
type Loss struct {
	Value *ts.Tensor
	Stats map[string]float64
	// Finish, when set, completes the backward pass after the trainer's
	// Value.Backward(): a network whose forward pass ran on several threads
	// (models.Transformer's lanes) backpropagates their shares there.
	Finish func() error
}

// MetricSink receives logged metrics (the results package implements it
// with SQLite; training must not depend on SQLite).
type MetricSink interface {
	LogMetrics(step int, split string, m map[string]float64) error
}

// EvalFunc evaluates the model after step and returns metrics logged under
// the "valid" split. The trainer calls it with the EMA weights swapped in
// (when EMA is on) and gradient recording off.
type EvalFunc func(step int) (map[string]float64, error)
