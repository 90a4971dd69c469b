package results

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Table is a comparison table: one row per variant, one column per quantity.
type Table struct {
	Columns []Column
	Rows    []Row
}

// Row holds the cells of one variant, in column order.
type Row struct {
	Variant string
	Runs    int // runs of the variant that matched the filter
	Cells   []Cell
}

// Cell is one aggregated quantity. With one contributing run, Value is that
// run's value and Err its standard error (NaN when unknown). With several runs
// (seeds), Value is their mean and Err their sample standard deviation
// (n-1): the spread between seeds, which is what decides whether two variants
// differ, rather than each run's own Monte Carlo error.
type Cell struct {
	Value float64
	Err   float64
	N     int  // runs that contributed
	OK    bool // false when no run of the variant has this quantity
}

// aggregate combines the observations of one variant for one column.
func aggregate(obs []observation) Cell {
	switch len(obs) {
	case 0:
		return Cell{}
	case 1:
		return Cell{Value: obs[0].value, Err: obs[0].stderr, N: 1, OK: true}
	}
	var sum float64
	for _, o := range obs {
		sum += o.value
	}
	n := float64(len(obs))
	mean := sum / n
	var ss float64
	for _, o := range obs {
		ss += (o.value - mean) * (o.value - mean)
	}
	return Cell{Value: mean, Err: math.Sqrt(ss / (n - 1)), N: len(obs), OK: true}
}

// String formats the cell as "23.21 ± 0.15": the error to two significant
// digits and the value to the same decimal place. Without a usable error the
// value alone is shown; an empty cell is "—".
func (c Cell) String() string {
	if !c.OK {
		return "—"
	}
	v, e := c.Value, c.Err
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	if e > 0 && !math.IsInf(e, 0) { // false for NaN too
		d := 1 - int(math.Floor(math.Log10(e)))
		d = max(0, min(d, 9))
		return fmt.Sprintf("%.*f ± %.*f", d, v, d, e)
	}
	if v == 0 || math.Abs(v) >= 1 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// Footnote explains the ± of the table.
const Footnote = "± is the standard error of a single run, or the standard deviation across runs (seeds) of a variant; (n=k) marks a quantity that only k of the variant's runs have."

// cells renders the table as strings: a header row then one row per variant.
func (t *Table) cells() [][]string {
	head := []string{"variant", "runs"}
	for _, c := range t.Columns {
		head = append(head, c.Label())
	}
	out := [][]string{head}
	for _, r := range t.Rows {
		line := []string{r.Variant, fmt.Sprint(r.Runs)}
		for _, c := range r.Cells {
			s := c.String()
			if c.OK && c.N < r.Runs {
				s += fmt.Sprintf(" (n=%d)", c.N)
			}
			line = append(line, s)
		}
		out = append(out, line)
	}
	return out
}

func widths(rows [][]string) []int {
	w := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, s := range r {
			w[i] = max(w[i], utf8.RuneCountInString(s))
		}
	}
	return w
}

// pad aligns s in width runes: left for the variant column, right for numbers.
func pad(s string, width int, left bool) string {
	fill := strings.Repeat(" ", width-utf8.RuneCountInString(s))
	if left {
		return s + fill
	}
	return fill + s
}

// WriteText writes the table as aligned plain text for a terminal.
func (t *Table) WriteText(w io.Writer) error {
	_, err := io.WriteString(w, gridText(t.cells())+"\n"+Footnote+"\n")
	return err
}

// gridText renders a header row and body rows as aligned plain text, the
// first column left-aligned and the others right-aligned.
func gridText(rows [][]string) string {
	wd := widths(rows)
	var b strings.Builder
	for ri, r := range rows {
		for i, s := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(pad(s, wd[i], i == 0))
		}
		b.WriteString("\n")
		if ri == 0 {
			for i := range r {
				if i > 0 {
					b.WriteString("  ")
				}
				b.WriteString(strings.Repeat("-", wd[i]))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// WriteMarkdown writes the table as a GitHub-flavoured Markdown table (cells
// padded so that the source reads as well as the rendering), then the note.
func (t *Table) WriteMarkdown(w io.Writer) error {
	_, err := io.WriteString(w, gridMarkdown(t.cells())+"\n"+Footnote+"\n")
	return err
}

// gridMarkdown renders a header row and body rows as a Markdown table.
func gridMarkdown(rows [][]string) string {
	for _, r := range rows {
		for i := range r {
			r[i] = strings.ReplaceAll(r[i], "|", `\|`)
		}
	}
	wd := widths(rows)
	var b strings.Builder
	line := func(r []string) {
		for i, s := range r {
			b.WriteString("| " + pad(s, wd[i], i == 0) + " ")
		}
		b.WriteString("|\n")
	}
	line(rows[0])
	for i, n := range wd {
		if i == 0 {
			b.WriteString("|:" + strings.Repeat("-", n+1))
		} else {
			b.WriteString("|" + strings.Repeat("-", n+1) + ":")
		}
	}
	b.WriteString("|\n")
	for _, r := range rows[1:] {
		line(r)
	}
	return b.String()
}

// String is the plain-text rendering.
func (t *Table) String() string {
	var b strings.Builder
	_ = t.WriteText(&b) // a strings.Builder does not fail
	return b.String()
}
