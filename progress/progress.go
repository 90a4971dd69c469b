// Package progress shows how far a long loop has come. On a terminal it is
// one redrawn line with a bar, drawn by github.com/schollz/progressbar
// (rate, elapsed time and ETA); in a pipe, a log file or under CI=true it is
// a plain line every few units, so logs stay readable. Training,
// evaluation and sampling all report through it; slog stays for logs.
package progress

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Meter counts units (steps, batches) towards a total.
type Meter struct {
	bar   *progressbar.ProgressBar // terminal only
	plain func(done int, detail string)
	every int
	done  int
	total int
}

// Terminal reports whether w is a terminal that a bar may redraw: an
// *os.File on a character device, outside CI.
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// New is a meter of total units (0: unknown) named name, writing to w (nil:
// nowhere). Off a terminal, plain(done, detail) is called every `every`
// units and at the last one; nil plain writes nothing there.
func New(w io.Writer, name string, total, every int, plain func(done int, detail string)) *Meter {
	m := &Meter{plain: plain, every: max(every, 1), total: total}
	if w == nil {
		m.plain = nil
		return m
	}
	if Terminal(w) {
		size := total
		if size <= 0 {
			size = -1 // unknown: a spinner
		}
		m.bar = progressbar.NewOptions(size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionSetWidth(24),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("it"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return m
}

// Add counts n units done; detail (loss, tokens/s, …) is shown beside the
// bar, or in the plain line when one is due.
func (m *Meter) Add(n int, detail string) {
	m.done += n
	if m.bar != nil {
		if detail != "" {
			m.bar.Describe(detail)
		}
		_ = m.bar.Add(n)
		return
	}
	if m.plain != nil && (m.done%m.every == 0 || m.done == m.total) {
		m.plain(m.done, detail)
	}
}

// SetTotal sets the total once it is known.
func (m *Meter) SetTotal(total int) {
	m.total = total
	if m.bar != nil && total > 0 {
		m.bar.ChangeMax(total)
	}
}

// Finish ends the redrawn line; calling it again does nothing.
func (m *Meter) Finish() {
	if m.bar != nil {
		_ = m.bar.Finish()
		m.bar = nil
	}
}

// Plain writes "name done/total detail" lines to w, the default plain form.
func Plain(w io.Writer, name string, total int) func(int, string) {
	return func(done int, detail string) {
		if total > 0 {
			fmt.Fprintf(w, "%s %d/%d %s\n", name, done, total, detail)
		} else {
			fmt.Fprintf(w, "%s %d %s\n", name, done, detail)
		}
	}
}
