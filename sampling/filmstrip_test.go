package sampling

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"slices"
	"testing"

	"github.com/dlmlab/difflm/torchx"
)

// threeFrames is a hand-made filmstrip of a 3-token sequence.
func threeFrames() (*Filmstrip, func([]int) string) {
	words := map[int]string{0: "The", 1: " end\n", 2: " cat"}
	decode := func(ids []int) string {
		s := ""
		for _, id := range ids {
			s += words[id]
		}
		return s
	}
	f := &Filmstrip{
		Frames:  []Frame{{0, 0, []int{9, 9, 9}}, {1, 1, []int{9, 2, 9}}, {2, 2, []int{0, 2, 1}}},
		Decided: []int{2, 1, 2},
		Steps:   2,
		Pending: 9,
	}
	return f, decode
}

func TestFilmstripText(t *testing.T) {
	f, decode := threeFrames()
	want := "step    0  calls    0 | ▒▒▒\n" +
		"step    1  calls    1 | ▒ cat▒\n" +
		"step    2  calls    2 | The cat end↵\n"
	if got := f.Text(decode); got != want {
		t.Errorf("Text:\n%s\nwant:\n%s", got, want)
	}
}

// TestFilmstripPNG checks the geometry and that masks are grey boxes in
// the first frame and tokens are coloured in the last.
func TestFilmstripPNG(t *testing.T) {
	f, decode := threeFrames()
	var buf bytes.Buffer
	if err := f.PNG(&buf, decode, 400); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	frameH := lineH + frameGap // 3 tokens fit on one line
	if want := image.Rect(0, 0, 400, 2*margin+3*frameH); img.Bounds() != want {
		t.Fatalf("bounds %v, want %v", img.Bounds(), want)
	}
	x0 := margin + (labelChars+1)*charW
	if c := color.GrayModel.Convert(img.At(x0+1, margin+lineH/2)).(color.Gray); c.Y != 200 {
		t.Errorf("first frame, first cell: grey %d, want the mask box (200)", c.Y)
	}
	coloured := false
	top := margin + 2*frameH
	for x := x0; x < x0+12*charW; x++ {
		for y := top; y < top+lineH; y++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r != g || g != b {
				coloured = true
			}
		}
	}
	if !coloured {
		t.Error("last frame has no coloured token")
	}
}

// TestRecorderKeepsChosenSteps records a toy chain at steps 0 and 4 of 8
// and checks the frames against the result and each other.
func TestRecorderKeepsChosenSteps(t *testing.T) {
	torchx.Lock()
	d := toyTable("absorbing")
	proc := toyProcess(d)
	cfg := DefaultConfig()
	cfg.BatchSize = 3
	res := generate(t, "ancestral-cached", cfg, proc, toyNetFor(t, d, proc, "mdlm", false),
		Request{N: 5, Len: 2, Steps: 8, Temperature: 1, TopP: 1, Seed: 4, Recorder: &Recorder{Steps: []int{0, 4}}})
	f := res.Filmstrip
	steps := []int{}
	for _, fr := range f.Frames {
		steps = append(steps, fr.Step)
	}
	if !slices.Equal(steps, []int{0, 4, 8}) || f.Steps != 8 {
		t.Fatalf("recorded steps %v of %d, want [0 4 8] of 8", steps, f.Steps)
	}
	last := f.Frames[2]
	if !slices.Equal(last.Tokens, res.Tokens[0]) {
		t.Errorf("last frame %v, first sample %v", last.Tokens, res.Tokens[0])
	}
	if !slices.Equal(f.Frames[0].Tokens, []int{3, 3}) || f.Frames[0].ModelCalls != 0 {
		t.Errorf("first frame %+v, want all masks before any call", f.Frames[0])
	}
	if !(f.Frames[1].ModelCalls <= last.ModelCalls && last.ModelCalls <= 8) {
		t.Errorf("model calls %d then %d, want nondecreasing and at most 8 in the first batch", f.Frames[1].ModelCalls, last.ModelCalls)
	}
	for i, tok := range f.Frames[1].Tokens {
		if decided := f.Decided[i]; (tok == 3) != (decided > 4) || decided < 1 || decided > 8 {
			t.Errorf("position %d is %d at step 4 but decided at step %d", i, tok, decided)
		}
	}
}

// TestBlockFilmstripShowsWholeSequence: the block sampler's frames cover
// all positions, and steps run on across blocks.
func TestBlockFilmstripShowsWholeSequence(t *testing.T) {
	torchx.Lock()
	nets := newTinyNets(t, 8)
	cfg := DefaultConfig()
	cfg.BlockLen, cfg.Window, cfg.BlockSampler = 4, 8, "confidence"
	res := generate(t, "block", cfg, nets.absorbing, nets.mdlm, Request{N: 1, Len: 12, Steps: 6, Temperature: 1, TopP: 1, Recorder: &Recorder{}})
	f := res.Filmstrip
	if len(f.Frames) != 7 || f.Steps != 6 {
		t.Fatalf("%d frames over %d steps, want 7 over 6", len(f.Frames), f.Steps)
	}
	// Two steps per block: after step 2 the first block is done, the rest
	// still masked.
	for i, tok := range f.Frames[2].Tokens {
		if (i < 4) == (tok == tinyV) {
			t.Errorf("step 2: position %d holds %d", i, tok)
		}
	}
	if !slices.Equal(f.Frames[6].Tokens, res.Tokens[0]) || f.Frames[6].ModelCalls != 6 {
		t.Errorf("last frame %+v, result %v", f.Frames[6], res.Tokens[0])
	}
}
