package eval

import (
	"log/slog"
	"os"
	"time"

	meter "github.com/dlmlab/difflm/progress"
)

// progress shows a long evaluation's batches: a bar on a terminal
// (package progress), else a log line every few batches with the rate and,
// when the total is known, the time left: evaluating a checkpoint on a CPU
// can take as long as a short training run.
type progress struct {
	task  string
	total int // batches expected; 0 when unknown
	every int
	start time.Time
	done  int
	bar   *meter.Meter // terminal only
}

func newProgress(task string, total, every int) *progress {
	p := &progress{task: task, total: total, every: max(every, 1), start: time.Now()}
	if meter.Terminal(os.Stderr) {
		p.bar = meter.New(os.Stderr, "eval "+task, total, every, nil)
	}
	return p
}

// setTotal sets the expected number of batches once it is known.
func (p *progress) setTotal(n int) {
	p.total = n
	if p.bar != nil {
		p.bar.SetTotal(n)
	}
}

// step counts one batch and logs every `every` batches.
func (p *progress) step() {
	p.done++
	if p.bar != nil {
		p.bar.Add(1, "")
		return
	}
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
	if p.bar != nil {
		p.bar.Finish()
	}
	args = append([]any{"task", p.task, "batches", p.done, "seconds", time.Since(p.start).Seconds()}, args...)
	slog.Info("eval: done", args...)
}
