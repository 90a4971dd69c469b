package train

import (
	"fmt"
	"io"
	"strings"
	"time"

	meter "github.com/dlmlab/difflm/progress"
)

// progress shows step, loss, learning rate, tokens per second and ETA:
// on a terminal as the detail of a redrawn bar (package progress), and as
// plain lines every `every` steps otherwise (pipes, log files, CI=true), so
// logs stay readable.
type progress struct {
	w       io.Writer
	meter   *meter.Meter // terminal only
	every   int
	first   int // step this process started from (after a resume)
	total   int
	start   time.Time
	now     func() time.Time
	tokens  int64
	lossSum float64
	lossN   int
}

// newProgress writes to w (nil: nowhere) from step first towards total.
func newProgress(w io.Writer, first, total, every int) *progress {
	p := &progress{w: w, every: every, first: first, total: total, now: time.Now}
	if meter.Terminal(w) {
		p.meter = meter.New(w, "train", total-first, every, nil)
	}
	p.start = p.now()
	return p
}

// update records that step finished with loss at learning rate lr after
// processing tokens tokens.
func (p *progress) update(step int, loss, lr float64, tokens int) {
	if p.w == nil {
		return
	}
	p.tokens += int64(tokens)
	p.lossSum += loss
	p.lossN++
	boundary := step%p.every == 0 || step == p.total
	switch {
	case p.meter != nil:
		p.meter.Add(1, p.detail(lr, p.now()))
	case boundary:
		fmt.Fprintln(p.w, p.line(step, lr, p.now()))
	}
	if boundary {
		p.lossSum, p.lossN = 0, 0
	}
}

// finish ends the redrawn line; calling it again does nothing.
func (p *progress) finish() {
	if p.meter != nil {
		p.meter.Finish()
	}
}

// line formats the state after step for a plain line; the loss is the
// mean since the last multiple of every.
func (p *progress) line(step int, lr float64, now time.Time) string {
	var b strings.Builder
	frac := float64(step) / float64(p.total)
	fmt.Fprintf(&b, "step %d/%d %3.0f%% %s", step, p.total, 100*frac, p.detail(lr, now))
	if elapsed, done := now.Sub(p.start), step-p.first; elapsed > 0 && done > 0 {
		eta := time.Duration(float64(elapsed) / float64(done) * float64(p.total-step))
		fmt.Fprintf(&b, " ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

// detail is loss, learning rate and tokens per second.
func (p *progress) detail(lr float64, now time.Time) string {
	s := fmt.Sprintf("loss %.4f lr %.2e", p.lossSum/float64(max(1, p.lossN)), lr)
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		s += fmt.Sprintf(" %.0f tok/s", float64(p.tokens)/secs)
	}
	return s
}
