package results

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// A variant's look in every figure: the colour says the forward process,
// the glyph and the dash pattern say the objective, so that a reader finds
// "all uniform variants" or "all SEDD variants" at a glance.
type variantStyle struct {
	color  color.Color
	shape  draw.GlyphDrawer
	dashes []vg.Length
}

// processColors and objectiveShapes are functions rather than package
// variables, so nothing can change them.
func processColor(process string) color.Color {
	switch process {
	case "none", "": // autoregressive
		return color.RGBA{R: 0x20, G: 0x20, B: 0x20, A: 0xff}
	case "absorbing":
		return color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	case "uniform":
		return color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	case "embedding":
		return color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	case "gaussian":
		return color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	}
	return color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}
}

func objectiveStyle(objective string) (draw.GlyphDrawer, []vg.Length) {
	p := vg.Points
	switch objective {
	case "ar":
		return draw.CircleGlyph{}, nil
	case "mdlm":
		return draw.CircleGlyph{}, nil
	case "d3pm":
		return draw.SquareGlyph{}, []vg.Length{p(6), p(3)}
	case "sedd":
		return draw.TriangleGlyph{}, []vg.Length{p(2), p(2)}
	case "bd3lm":
		return draw.PyramidGlyph{}, []vg.Length{p(6), p(2), p(2), p(2)}
	}
	return draw.CrossGlyph{}, []vg.Length{p(1), p(3)}
}

// stylesOf gives each variant of runs its style from the runs' process and
// objective tags.
func stylesOf(runs []Run) map[string]variantStyle {
	out := map[string]variantStyle{}
	for _, r := range runs {
		proc, _ := r.Tags["process"].(string)
		obj, _ := r.Tags["objective"].(string)
		shape, dashes := objectiveStyle(obj)
		out[r.Label()] = variantStyle{color: processColor(proc), shape: shape, dashes: dashes}
	}
	return out
}

// style is the variant's style, or a neutral one for an unknown label.
func style(styles map[string]variantStyle, variant string) variantStyle {
	if s, ok := styles[variant]; ok {
		return s
	}
	shape, dashes := objectiveStyle("")
	return variantStyle{color: processColor("?"), shape: shape, dashes: dashes}
}

// referenceColor draws reference levels (the unigram model).
func referenceColor() color.Color { return color.Gray{Y: 0x70} }

// legend is drawn in a strip right of the data (see saveFigure), so that
// it never covers a line; it remembers its entries' names to size the strip.
type legend struct {
	plot.Legend
	names []string
}

func newLegend() *legend {
	l := &legend{Legend: plot.NewLegend()}
	l.Top, l.Left = true, true
	return l
}

// Add adds an entry.
func (l *legend) Add(name string, thumbs ...plot.Thumbnailer) {
	l.names = append(l.names, name)
	l.Legend.Add(name, thumbs...)
}

// saveFigure writes fig as PNG or SVG (by path's extension). With an
// outside legend the canvas is w wide for the plot plus a strip on the
// right, as wide as the legend's longest entry.
func saveFigure(fig figure, w, h vg.Length, path string) error {
	if fig.legend == nil {
		return fig.plot.Save(w, h, path)
	}
	strip := legendWidth(fig.legend)
	c, err := draw.NewFormattedCanvas(w+strip, h, strings.TrimPrefix(filepath.Ext(path), "."))
	if err != nil {
		return err
	}
	dc := draw.New(c)
	fig.plot.Draw(draw.Crop(dc, 0, -strip, 0, 0))
	legCanvas := draw.Crop(dc, w, 0, 0, -vg.Points(8))
	fig.legend.Draw(legCanvas)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// legendWidth is the strip an outside legend needs: its widest entry, the
// thumbnail and some padding.
func legendWidth(l *legend) vg.Length {
	widest := vg.Length(0)
	for _, name := range l.names {
		widest = max(widest, l.TextStyle.Width(name))
	}
	return widest + l.ThumbnailWidth + vg.Points(24)
}
