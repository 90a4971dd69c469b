package sampling

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Cell geometry of basicfont.Face7x13, the one font the image uses.
const (
	charW, lineH = 7, 13
	labelChars   = 12 // "t=1024 c=512"
	frameGap     = 6
	margin       = 8
)

// PNG draws the filmstrip ("watch language crystallise"): one block of
// lines per frame, every position in a cell of fixed place and width (its
// final token's), so that tokens appear where they will stay. A token is
// coloured by the step at which its position was decided, from blue
// (early) through green to red (late), black if given; undecided
// positions are grey boxes, and tokens that will still change are grey.
// widthPx bounds the image width. Non-ASCII text is drawn as '?'.
func (f *Filmstrip) PNG(w io.Writer, decode func([]int) string, widthPx int) error {
	if len(f.Frames) == 0 {
		return fmt.Errorf("filmstrip: no frames to draw")
	}
	final := f.Frames[len(f.Frames)-1].Tokens
	piece := func(tok int) string { return printable(decode([]int{tok})) }
	cells := make([]int, len(final))
	for j, tok := range final {
		cells[j] = max(1, len(piece(tok)))
	}
	x0 := margin + (labelChars+1)*charW
	lines := layout(cells, max(1, (widthPx-x0-margin)/charW))
	frameH := lines.count*lineH + frameGap
	img := image.NewRGBA(image.Rect(0, 0, widthPx, 2*margin+len(f.Frames)*frameH))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	for i, fr := range f.Frames {
		top := margin + i*frameH
		text(img, margin, top, fmt.Sprintf("t=%d c=%d", fr.Step, fr.ModelCalls), color.Black)
		for j, tok := range fr.Tokens {
			x, y := x0+lines.col[j]*charW, top+lines.row[j]*lineH
			if tok == f.Pending {
				box := image.Rect(x, y+2, x+cells[j]*charW-1, y+lineH-1)
				draw.Draw(img, box, image.NewUniform(color.Gray{Y: 200}), image.Point{}, draw.Src)
				continue
			}
			c := color.Color(color.Gray{Y: 150})
			if tok == final[j] && fr.Step >= f.Decided[j] {
				c = f.colour(f.Decided[j])
			}
			s := piece(tok)
			if len(s) > cells[j] {
				s = s[:cells[j]]
			}
			text(img, x, y, s, c)
		}
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("filmstrip: encode png: %w", err)
	}
	return nil
}

// cellLayout places cells on wrapped lines: col and row per cell (in
// characters and lines), count lines in all.
type cellLayout struct {
	col, row []int
	count    int
}

// layout wraps cells of the given widths into lines of width chars.
func layout(cells []int, width int) cellLayout {
	l := cellLayout{col: make([]int, len(cells)), row: make([]int, len(cells)), count: 1}
	col := 0
	for j, c := range cells {
		if col > 0 && col+c > width {
			col, l.count = 0, l.count+1
		}
		l.col[j], l.row[j] = col, l.count-1
		col += c
	}
	return l
}

// colour maps the step a token was decided at to blue → green → red.
func (f *Filmstrip) colour(step int) color.Color {
	if step == 0 {
		return color.Black
	}
	stops := []color.RGBA{{40, 70, 210, 255}, {20, 150, 60, 255}, {210, 40, 30, 255}}
	u := float64(step) / float64(max(1, f.Steps)) * float64(len(stops)-1)
	i := min(int(u), len(stops)-2)
	a, b, t := stops[i], stops[i+1], u-float64(i)
	mix := func(p, q uint8) uint8 { return uint8(float64(p) + t*(float64(q)-float64(p)) + 0.5) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 255}
}

// text draws s with its top-left corner at (x, y).
func text(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13,
		Dot: fixed.P(x, y+basicfont.Face7x13.Ascent)}
	d.DrawString(s)
}

// printable makes a token's text drawable in the ASCII font: line breaks
// become spaces, other characters outside printable ASCII '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return ' '
		case r < ' ' || r > '~':
			return '?'
		}
		return r
	}, s)
}
