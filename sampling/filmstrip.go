package sampling

import (
	"fmt"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Recorder asks Generate for a filmstrip of the first sequence: snapshots
// of its chain at chosen steps, to watch language crystallise.
type Recorder struct {
	// Steps lists the steps to keep: 0 is the starting state, k the state
	// after k steps (tokens, for ar). Empty keeps every step. The final
	// state is always kept.
	Steps []int
}

// Filmstrip is a recorded chain.
type Filmstrip struct {
	Frames []Frame
	// Decided holds, per position, the step after which it last changed
	// (its token was decided); 0 for given tokens.
	Decided []int
	// Steps is the number of steps the chain took.
	Steps int
	// Pending is the id of undecided positions: the mask (absorbing), or
	// V, which no token has (positions ar has not reached yet).
	Pending int
}

// Frame is the sequence after Step steps and ModelCalls network calls.
type Frame struct {
	Step, ModelCalls int
	Tokens           []int
}

// recording builds a Filmstrip while the first batch runs: it sees every
// step (to know when each position was decided) and keeps the asked ones.
type recording struct {
	keep    map[int]bool // nil keeps all
	step    int
	prev    []int
	decided []int
	frames  []Frame
	last    Frame // the latest state, kept or not
	pending int
}

func newRecording(r Recorder, pending int) *recording {
	rec := &recording{pending: pending, step: -1}
	if len(r.Steps) > 0 {
		rec.keep = map[int]bool{}
		for _, s := range r.Steps {
			rec.keep[s] = true
		}
	}
	return rec
}

// observe takes the batch's state x [B,L] after one more step.
func (r *recording) observe(x *ts.Tensor, calls int) {
	first := x.MustNarrow(0, 0, 1, false).MustTo(gotch.CPU, true)
	vals := first.Int64Values(true)
	row := make([]int, len(vals))
	for i, v := range vals {
		row[i] = int(v)
	}
	r.step++
	if r.prev == nil {
		r.decided = make([]int, len(row))
	}
	for j := range row {
		if r.prev != nil && row[j] != r.prev[j] {
			r.decided[j] = r.step
		}
	}
	r.prev = row
	r.last = Frame{Step: r.step, ModelCalls: calls, Tokens: row}
	if r.keep == nil || r.keep[r.step] {
		r.frames = append(r.frames, r.last)
	}
}

func (r *recording) filmstrip() *Filmstrip {
	frames := r.frames
	if n := len(frames); n == 0 || frames[n-1].Step < r.last.Step {
		frames = append(frames, r.last)
	}
	return &Filmstrip{Frames: frames, Decided: r.decided, Steps: r.step, Pending: r.pending}
}

// Text renders one line per frame: the step, the model calls so far and
// the text, with ▒ for each undecided position and ↵ for line breaks.
func (f *Filmstrip) Text(decode func([]int) string) string {
	var b strings.Builder
	for _, fr := range f.Frames {
		fmt.Fprintf(&b, "step %4d  calls %4d | ", fr.Step, fr.ModelCalls)
		for _, tok := range fr.Tokens {
			if tok == f.Pending {
				b.WriteString("▒")
				continue
			}
			b.WriteString(strings.ReplaceAll(decode([]int{tok}), "\n", "↵"))
		}
		b.WriteString("\n")
	}
	return b.String()
}
