package eval

import (
	"log/slog"
	"time"
)

// progress logs a line every few batches of a long evaluation, with the
// rate and, when the total is known, the time left: evaluating a
// checkpoint on a CPU can take as long as a short training run.
type progress struct {
	task  string
	total int // batches expected; 0 when unknown
	every int
	start time.Time
	done  int
}

func newProgress(task string, total, every int) *progress {
	return &progress{task: task, total: total, every: max(every, 1), start: time.Now()}
}

// step counts one batch and logs every `every` batches.
func (p *progress) step() {
	p.done++
	if p.done%p.every != 0 {
		return
	}
	secs := time.Since(p.start).Seconds()
	rate := float64(p.done) / secs
	args := []any{"task", p.task, "batches", p.done, "batches_per_s", rate}
	if p.total > 0 {
		left := time.Duration(float64(max(p.total-p.done, 0)) / rate * float64(time.Second))
		args = append(args, "of", p.total, "eta", left.Round(time.Second).String())
	}
	slog.Info("eval: progress", args...)
}

// finish logs the end of the evaluation.
func (p *progress) finish(args ...any) {
	args = append([]any{"task", p.task, "batches", p.done, "seconds", time.Since(p.start).Seconds()}, args...)
	slog.Info("eval: done", args...)
}
