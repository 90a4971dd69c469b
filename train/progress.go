package train

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// progress shows step, loss, learning rate, tokens per second, ETA and a
// bar on one redrawn line when writing to a terminal, and plain lines every
// `every` steps otherwise (pipes, log files, CI=true), so logs stay
// readable.
type progress struct {
	w          io.Writer
	tty        bool
	every      int
	first      int // step this process started from (after a resume)
	total      int
	start      time.Time
	now        func() time.Time
	drawn      time.Time
	tokens     int64
	lossSum    float64
	lossN      int
	lastLength int
}

// newProgress writes to w (nil: nowhere) from step first towards total.
func newProgress(w io.Writer, first, total, every int) *progress {
	p := &progress{w: w, every: every, first: first, total: total, now: time.Now}
	if f, ok := w.(*os.File); ok {
		ci, _ := strconv.ParseBool(os.Getenv("CI"))
		st, err := f.Stat()
		p.tty = !ci && err == nil && st.Mode()&os.ModeCharDevice != 0
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
	now := p.now()
	switch {
	case p.tty && (boundary || now.Sub(p.drawn) >= 100*time.Millisecond):
		line := p.line(step, lr, now, true)
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", max(0, p.lastLength-len(line))))
		p.lastLength = len(line)
		p.drawn = now
	case !p.tty && boundary:
		fmt.Fprintln(p.w, p.line(step, lr, now, false))
	}
	if boundary {
		p.lossSum, p.lossN = 0, 0
	}
}

// finish ends the redrawn line; calling it again does nothing.
func (p *progress) finish() {
	if p.w != nil && p.tty && p.lastLength > 0 {
		fmt.Fprintln(p.w)
		p.lastLength = 0
	}
}

// line formats the state after step; the loss is the mean since the last
// multiple of every.
func (p *progress) line(step int, lr float64, now time.Time, bar bool) string {
	elapsed := now.Sub(p.start)
	done := step - p.first
	var b strings.Builder
	fmt.Fprintf(&b, "step %d/%d", step, p.total)
	frac := float64(step) / float64(p.total)
	if bar {
		const width = 24
		n := int(frac * width)
		fmt.Fprintf(&b, " [%s%s]", strings.Repeat("#", n), strings.Repeat(".", width-n))
	}
	fmt.Fprintf(&b, " %3.0f%% loss %.4f lr %.2e", 100*frac, p.lossSum/float64(max(1, p.lossN)), lr)
	if secs := elapsed.Seconds(); secs > 0 && done > 0 {
		fmt.Fprintf(&b, " %.0f tok/s", float64(p.tokens)/secs)
		eta := time.Duration(float64(elapsed) / float64(done) * float64(p.total-step))
		fmt.Fprintf(&b, " ETA %s", eta.Round(time.Second))
	}
	return b.String()
}
