package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
	"github.com/dlmlab/difflm/train"
)

// testSetup is the experiment defaults on a 64-token vocabulary with one
// thread (two OpenMP threads on a loaded two-core machine can make a step
// a hundred times slower); objective is mdlm or ar.
func testSetup(objective string) Setup {
	s := Setup{
		Model: models.DefaultConfig(), Process: forward.DefaultConfig(), Objective: losses.DefaultConfig(),
		Train: train.DefaultConfig(), Vocab: 64, Threads: 1,
	}
	s.Objective.Name = objective
	if objective == "ar" {
		s.Process.Name = "none"
	}
	s.Train.LR = 1e-2 // large enough that the weights move visibly within the test's steps
	return s
}

// testConfig is one tiny row: L = 16, B = 4, one warmup and two timed steps.
func testConfig() Config {
	c := DefaultConfig()
	c.Presets, c.SeqLens, c.Tokens, c.Warmup, c.Steps, c.Repeats = []string{"tiny"}, []int{16}, 64, 1, 2, 1
	c.Script = "torch_train.py"
	return c
}

// needTorch skips the test when the interpreter has no torch (the CI
// image installs python3-torch only for make bench). It reads the script
// first, so that go test's cache reruns the test when the script changes.
func needTorch(t *testing.T, cfg Config) {
	t.Helper()
	if _, err := os.ReadFile(cfg.Script); err != nil {
		t.Fatal(err)
	}
	if _, err := torchVersion(context.Background(), cfg.Python); err != nil {
		t.Skipf("PyTorch side skipped: %v", err)
	}
}

// TestGoSide trains the tiny AR model for four steps through the bench's
// Go path: one duration per step but the last, and a first loss of ln V,
// since at init the output projection (std 0.02 over LayerNormed features)
// gives nearly uniform logits.
func TestGoSide(t *testing.T) {
	torchx.Lock()
	cfg, s := testConfig(), testSetup("ar")
	c, r := tinyGoRun(t, cfg, s)
	if len(r.StepS) != c.Steps-1 || len(r.CPUS) != c.Steps-1 || len(r.Loss) != c.Steps {
		t.Fatalf("%d steps: %d wall and %d CPU durations, %d losses; want %d, %d, %d",
			c.Steps, len(r.StepS), len(r.CPUS), len(r.Loss), c.Steps-1, c.Steps-1, c.Steps)
	}
	if d := math.Abs(r.Loss[0] - math.Log(64)); d > 0.05 {
		t.Errorf("first AR loss %.4f, want ln 64 = %.4f ± 0.05", r.Loss[0], math.Log(64))
	}
	// tiny at V = 64: embedding 65·128, 4 blocks of 197,504, output norm 128 and projection 128·64 + 64.
	if want := int64(65*128 + 4*197504 + 128 + 128*64 + 64); r.Params != want {
		t.Errorf("%d parameters, want %d", r.Params, want)
	}
}

// TestSameLossesAsPyTorch runs one row of the table per objective, with
// the whole head and with the chunked cross-entropy on the Go side: both
// sides start from the same weights, see the same batches and draw the
// same masks and dropout (same libtorch generator, same seeds, same order
// of draws), so their losses agree at every step to float32 rounding,
// updates included. A different network, loss, init or draw order would
// differ by 1e-2 or more. The Go side also trains on two lanes (the batch
// split over two threads, models/lanes.go) against PyTorch's one batch.
func TestSameLossesAsPyTorch(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	needTorch(t, cfg)
	for _, c := range []struct {
		objective    string
		chunk, lanes int
	}{{"mdlm", 0, 1}, {"ar", 0, 1}, {"mdlm", 5, 1}, {"ar", 5, 1}, {"mdlm", 0, 2}, {"ar", 5, 2}} {
		objective := fmt.Sprintf("%s/ce_chunk=%d/lanes=%d", c.objective, c.chunk, c.lanes)
		s := testSetup(c.objective)
		s.Model.Lanes = c.lanes
		row, err := measure(context.Background(), cfg, s, newCase(cfg, RowSpec{Preset: "tiny", L: 16, Vocab: s.Vocab, CEChunk: c.chunk}, t.TempDir()))
		if err != nil {
			t.Fatalf("%s: %v", objective, err)
		}
		if row.GoRSS <= 0 || row.PyRSS <= 0 {
			t.Errorf("%s: peak RSS Go %d, PyTorch %d bytes: want both measured", objective, row.GoRSS, row.PyRSS)
		}
		if row.LossDiff > 1e-4 {
			t.Errorf("%s: Go and PyTorch losses differ by up to %.2g", objective, row.LossDiff)
		}
		if row.B != 4 || row.Go.TokensPerS <= 0 || row.Py.TokensPerS <= 0 {
			t.Errorf("%s: row %+v, want B = 4 and positive speeds", objective, row)
		}
		if got := row.format(); !strings.HasPrefix(got, "tiny") || len(strings.Fields(got)) != len(regexp.MustCompile(`\s{2,}`).Split(tableHeader, -1)) {
			t.Errorf("%s: row %q does not fit the header %q", objective, got, tableHeader)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"unknown preset", func(c *Config) { c.Presets = []string{"huge"} }, `bench.presets: "huge" is not one of`},
		{"no presets", func(c *Config) { c.Presets = nil }, "bench.presets: empty"},
		{"length does not divide tokens", func(c *Config) { c.SeqLens = []int{64, 100} }, "bench.seq_lens: 100 does not divide bench.tokens 1024"},
		{"length 1", func(c *Config) { c.SeqLens = []int{1} }, "bench.seq_lens: 1 is too short"},
		{"no steps", func(c *Config) { c.Steps = 0 }, "bench.steps: 0 must be at least 1"},
		{"negative warmup", func(c *Config) { c.Warmup = -1 }, "bench.warmup: -1 must not be negative"},
		{"no repeats", func(c *Config) { c.Repeats = 0 }, "bench.repeats: 0 must be at least 1"},
		{"no python", func(c *Config) { c.Python = "" }, "bench.python: must name"},
		{"row with a tiny vocabulary", func(c *Config) { c.Rows[1].Vocab = 1 }, "bench.rows[1]: vocab 1, want at least 2"},
		{"row length does not divide tokens", func(c *Config) { c.Rows[0].L = 100 }, "bench.rows[0]: seq_len 100 must be at least 2 and divide bench.tokens 1024"},
		{"row with a negative chunk", func(c *Config) { c.Rows[2].CEChunk = -1 }, "bench.rows[2]: ce_chunk -1 is negative"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestSetupCheck(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Setup)
		want string
	}{
		{"mdlm", func(*Setup) {}, ""},
		{"sedd", func(s *Setup) { s.Objective.Name = "sedd" }, "objective.name: the bench trains mdlm or ar, got sedd"},
		{"finite T", func(s *Setup) { s.Objective.Steps = 100 }, "objective.steps: the bench trains the continuous-time bound (0), got 100"},
		{"cosine", func(s *Setup) { s.Process.Schedule = "cosine" }, "with the loglinear schedule, got absorbing with cosine"},
		{"fused", func(s *Setup) { s.Model.Attention = "fused" }, "model.attention: the bench compares the math attention"},
		{"threads", func(s *Setup) { s.Threads = 0 }, "threads: 0, the bench needs an explicit count"},
	}
	for _, c := range cases {
		s := testSetup("mdlm")
		c.edit(&s)
		err := s.check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestSummaries(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3, 1, 2 = %g, want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4, 1, 3, 2 = %g, want 2.5", got)
	}
	// Warmup 1, 2 timed steps: the 9.0 s warmup and the trailing 7.0 s step are ignored.
	cfg := Config{Warmup: 1, Steps: 2}
	s := summarize(Result{StepS: []float64{9, 0.5, 0.25, 7}, CPUS: []float64{9, 1, 0.5, 7}}, Case{B: 4, L: 16}, cfg)
	if s.StepS != 0.375 || s.CPUS != 0.75 || s.TokensPerS != 64/0.375 {
		t.Errorf("summary %+v, want step 0.375 s, CPU 0.75 s, %g tokens/s", s, 64/0.375)
	}
	if f := fastest([]Summary{{StepS: 2}, {StepS: 1}, {StepS: 3}}); f.StepS != 1 {
		t.Errorf("fastest picked the run of %g s, want 1 s", f.StepS)
	}
	if d := maxAbsDiff([]float64{1, 2, 3}, []float64{1, 2.5, 2}); d != 1 {
		t.Errorf("maxAbsDiff = %g, want 1", d)
	}
}

// BenchmarkGoSide times the Go side of the default table's rows (mdlm,
// V = 4098, two threads), one whole run per iteration, and reports the
// run's median tokens/s and CPU milliseconds per step. With -cpuprofile it
// shows where a Go step spends its time:
//
//	go test ./bench -run '^$' -bench GoSide/tiny/L64 -benchtime 3x -cpuprofile cpu.out
func BenchmarkGoSide(b *testing.B) {
	cfg, s := DefaultConfig(), testSetup("mdlm")
	s.Vocab, s.Train.LR, s.Threads = 4098, train.DefaultConfig().LR, 2
	for _, preset := range cfg.Presets {
		for _, l := range cfg.SeqLens {
			b.Run(fmt.Sprintf("%s/L%d", preset, l), func(b *testing.B) {
				torchx.Lock() // a sub-benchmark runs on its own goroutine
				c := newCase(cfg, RowSpec{Preset: preset, L: l, Vocab: s.Vocab}, b.TempDir())
				if err := writeBatches(&c, s.Vocab, s.Train.Seed); err != nil {
					b.Fatal(err)
				}
				var sum Summary
				for range b.N {
					r, err := goRun(context.Background(), s, c, b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					sum = summarize(r, c, cfg)
				}
				b.ReportMetric(sum.TokensPerS, "tok/s")
				b.ReportMetric(1e3*sum.CPUS, "cpu-ms/step")
			})
		}
	}
}

// TestRoofline: the FLOPs of a token on a hand-counted case, and a GEMM
// rate that is a rate.
func TestRoofline(t *testing.T) {
	// small-cpu: 4 layers, width 256. 3,167,772 parameters for AR over 28
	// characters (29 input states): 6·(3,167,772 − 29·256) + 12·4·256·256.
	got, err := FLOPsPerToken("small-cpu", 29, 3167772, 256)
	if err != nil {
		t.Fatal(err)
	}
	if want := 6*(3167772.0-29*256) + 12*4*256*256; got != want {
		t.Errorf("FLOPs per token %.0f, want %.0f", got, want)
	}
	torchx.Lock()
	if r := GEMMRate(1); !(r > 1e8 && r < 1e13) {
		t.Errorf("GEMM rate %g FLOP/s on one thread, want 0.1 GFLOP/s … 10 TFLOP/s", r)
	}
	if m := mfu(1000, 2e7, 1e11); math.Abs(m-0.2) > 1e-12 {
		t.Errorf("mfu(1000 tok/s, 2e7 FLOP/tok, 1e11 FLOP/s) = %v, want 0.2", m)
	}
}

// TestPyTorchPeakIsItsOwn: the PyTorch side's peak memory is its own
// process's, not the Go process's that started it: with 1 GiB touched on
// the Go side first, the tiny row's PyTorch process (a few hundred MiB)
// must report less. getrusage's ru_maxrss, read in the child, reported
// the parent's 1 GiB (Linux carries a vfork parent's high-water mark
// across exec).
func TestPyTorchPeakIsItsOwn(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	needTorch(t, cfg)
	s := testSetup("mdlm")
	c, g := tinyGoRun(t, cfg, s)
	const big = 1 << 30
	ballast := make([]byte, big)
	for i := 0; i < big; i += 4096 {
		ballast[i] = 1
	}
	p, err := pyRun(context.Background(), cfg, s, c, g.Shapes)
	runtime.KeepAlive(ballast)
	if err != nil {
		t.Fatal(err)
	}
	if p.PeakRSS <= 0 || p.PeakRSS >= big {
		t.Errorf("PyTorch side's peak RSS %d MiB with the Go process at 1 GiB: want its own, above 0 and below 1024", p.PeakRSS>>20)
	}
}

// tinyGoRun trains the tiny preset at L = 16 through the bench's Go path
// and returns the case (its batches written for the PyTorch side) and the
// result.
func tinyGoRun(t *testing.T, cfg Config, s Setup) (Case, Result) {
	t.Helper()
	c := newCase(cfg, RowSpec{Preset: "tiny", L: 16, Vocab: s.Vocab}, t.TempDir())
	if err := writeBatches(&c, s.Vocab, s.Train.Seed); err != nil {
		t.Fatal(err)
	}
	r, err := goRun(context.Background(), s, c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c, r
}
