package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/checkpoint"
)

// Summary is one run reduced to the table's numbers: medians over the
// timed steps.
type Summary struct {
	StepS, CPUS float64 // wall and CPU seconds per step
	TokensPerS  float64 // B·L / StepS
}

// Row is one line of the table: each side's fastest run of a case.
type Row struct {
	Preset   string
	L, B, V  int
	CEChunk  int // the Go side's objective.ce_chunk (0: the whole head)
	Params   int64
	Go, Py   Summary
	LossDiff float64 // largest |Go − PyTorch| loss over all steps and runs
	// FLOPs is the model FLOPs of one training token (FLOPsPerToken), GEMM
	// the machine's fp32 matmul rate measured in the same run (GEMMRate).
	FLOPs, GEMM float64
	// GoRSS and PyRSS are each side's peak resident memory in bytes over
	// its runs of the row (0: not measured).
	GoRSS, PyRSS int64
}

// Ratio is Go's tokens/s over PyTorch's: above 1, Go is faster.
func (r Row) Ratio() float64 { return r.Go.TokensPerS / r.Py.TokensPerS }

// Run measures every row of cfg under s, one side at a time, and writes
// the table to w, each row as soon as it is measured. The caller must be
// torchx.Lock'ed: the Go side trains on the calling goroutine.
func Run(ctx context.Context, cfg Config, s Setup, w io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Script); err != nil {
		return fmt.Errorf("bench.script: %w (paths are relative to the working directory: run from the repository root)", err)
	}
	version, err := torchVersion(ctx, cfg.Python)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "difflm-bench-")
	if err != nil {
		return fmt.Errorf("bench: temporary folder: %w", err)
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(w, "# Go (gotch) vs PyTorch %s eager: objective %s, V = %d (the grid; the last rows have their own), %d threads each; median of %d steps after %d warmup, fastest of %d runs per side\n",
		version, s.Objective.Name, s.Vocab, s.Threads, cfg.Steps, cfg.Warmup, cfg.Repeats)
	fmt.Fprintln(w, "# ratio = Go tok/s / PyTorch tok/s; cpu-ms = process CPU time per step, all threads; max|Δloss| = largest loss difference over all steps")
	fmt.Fprintf(w, "# OMP_WAIT_POLICY=%s; load average before: %s\n", ompWaitPolicy(), LoadAverage())
	gemm := GEMMRate(s.Threads)
	fmt.Fprintf(w, "# roofline: fp32 GEMM %d³ through this libtorch, %d threads: %.1f GFLOP/s; MFU = tok/s × GFLOP/tok ÷ that (GFLOP/tok = 6·(parameters − embedding) + 12·layers·L·width, forward + backward)\n",
		gemmSize, s.Threads, gemm/1e9)
	fmt.Fprintln(w, "# peak RSS = the side's peak resident memory over its runs of the row (the Go side's since its high-water mark was reset before each run: libtorch and allocator caches included; the PyTorch side's whole process)")
	fmt.Fprintln(w, tableHeader)
	var cases []Case
	for _, preset := range cfg.Presets {
		for _, l := range cfg.SeqLens {
			cases = append(cases, newCase(cfg, RowSpec{Preset: preset, L: l, Vocab: s.Vocab, CEChunk: s.Objective.CEChunk}, dir))
		}
	}
	for _, r := range cfg.Rows {
		cases = append(cases, newCase(cfg, r, dir))
	}
	for _, c := range cases {
		row, err := measure(ctx, cfg, s, c)
		if err != nil {
			return fmt.Errorf("bench %s L=%d V=%d: %w", c.Preset, c.L, c.Vocab, err)
		}
		if row.FLOPs, err = FLOPsPerToken(c.Preset, c.Vocab+1, row.Params, c.L); err != nil {
			return err
		}
		row.GEMM = gemm
		fmt.Fprintln(w, row.format())
	}
	fmt.Fprintf(w, "# load average after: %s\n", LoadAverage())
	return nil
}

// newCase is row r, its files in dir.
func newCase(cfg Config, r RowSpec, dir string) Case {
	name := fmt.Sprintf("%s-L%d-V%d-c%d", r.Preset, r.L, r.Vocab, r.CEChunk)
	return Case{
		Preset: r.Preset, L: r.L, B: cfg.Tokens / r.L, Vocab: r.Vocab, CEChunk: r.CEChunk,
		// One more step than timed: the Go side times a step from its
		// batch request to the next one.
		Steps:   cfg.Warmup + cfg.Steps + 1,
		Weights: filepath.Join(dir, name+"-init.safetensors"),
		Batches: filepath.Join(dir, name+"-batches.safetensors"),
	}
}

// measure runs both sides cfg.Repeats times, alternating, on the same
// weights and batches, and keeps each side's fastest run.
func measure(ctx context.Context, cfg Config, s Setup, c Case) (Row, error) {
	if err := writeBatches(&c, c.Vocab, s.Train.Seed); err != nil {
		return Row{}, err
	}
	row := Row{Preset: c.Preset, L: c.L, B: c.B, V: c.Vocab, CEChunk: c.CEChunk}
	var goRuns, pyRuns []Summary
	for r := range cfg.Repeats {
		runtime.GC() // the previous run's tensors are freed now, not during this run
		g, err := goRun(ctx, s, c, filepath.Dir(c.Weights))
		if err != nil {
			return Row{}, fmt.Errorf("go side: %w", err)
		}
		p, err := pyRun(ctx, cfg, s, c, g.Shapes)
		if err != nil {
			return Row{}, fmt.Errorf("pytorch side: %w", err)
		}
		if g.Params != p.Params {
			return Row{}, fmt.Errorf("the Go model has %d parameters, the PyTorch one %d", g.Params, p.Params)
		}
		row.Params = g.Params
		row.GoRSS, row.PyRSS = max(row.GoRSS, g.PeakRSS), max(row.PyRSS, p.PeakRSS)
		row.LossDiff = max(row.LossDiff, maxAbsDiff(g.Loss, p.Loss))
		gs, ps := summarize(g, c, cfg), summarize(p, c, cfg)
		goRuns, pyRuns = append(goRuns, gs), append(pyRuns, ps)
		slog.Info("bench run", "preset", c.Preset, "L", c.L, "B", c.B, "repeat", r+1,
			"go_tok_s", math.Round(gs.TokensPerS), "py_tok_s", math.Round(ps.TokensPerS))
	}
	row.Go, row.Py = fastest(goRuns), fastest(pyRuns)
	return row, nil
}

// writeBatches draws one batch of uniform random tokens per step and
// writes them for the PyTorch side as tokens [steps, B, L] (int64).
func writeBatches(c *Case, vocab int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(c.L)))
	all := make([]int64, 0, c.Steps*c.B*c.L)
	c.tokens = nil
	for range c.Steps {
		batch := make([]int64, c.B*c.L)
		for i := range batch {
			batch[i] = rng.Int64N(int64(vocab))
		}
		c.tokens = append(c.tokens, batch)
		all = append(all, batch...)
	}
	t := ts.MustOfSlice(all).MustView([]int64{int64(c.Steps), int64(c.B), int64(c.L)}, true)
	defer t.MustDrop()
	return checkpoint.Save(c.Batches, map[string]*ts.Tensor{"tokens": t}, nil)
}

// summarize reduces a run to the medians of its timed steps.
func summarize(r Result, c Case, cfg Config) Summary {
	lo, hi := cfg.Warmup, cfg.Warmup+cfg.Steps
	s := Summary{StepS: median(r.StepS[lo:hi]), CPUS: median(r.CPUS[lo:hi])}
	s.TokensPerS = float64(c.B*c.L) / s.StepS
	return s
}

// fastest is the run with the shortest median step.
func fastest(runs []Summary) Summary {
	return slices.MinFunc(runs, func(a, b Summary) int { return cmp.Compare(a.StepS, b.StepS) })
}

// median of a non-empty slice (the mean of the middle two for even sizes).
func median(x []float64) float64 {
	s := slices.Sorted(slices.Values(x))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// maxAbsDiff is the largest |a[i] − b[i]| over their common length.
func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range min(len(a), len(b)) {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// ompWaitPolicy is how libgomp's idle threads wait, on both sides (they
// share the environment). The default spins, which on a machine with more
// runnable threads than cores made steps up to ten times slower here.
func ompWaitPolicy() string {
	if p := os.Getenv("OMP_WAIT_POLICY"); p != "" {
		return p
	}
	return "unset (libgomp spins)"
}

// LoadAverage is the 1-, 5- and 15-minute load average, for the record of
// how busy the machine was ("?" where /proc is missing).
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

const tableHeader = "preset         V  ce_chunk    params     L     B    Go tok/s  PyTorch tok/s  ratio   Go cpu-ms  Py cpu-ms  max|Δloss|  GFLOP/tok  Go MFU  Py MFU  Go peak MiB  Py peak MiB"

// format is the row under tableHeader. The CPU time per step is there
// because on a shared machine it is steadier than wall time.
func (r Row) format() string {
	chunk := "—"
	if r.CEChunk > 0 {
		chunk = fmt.Sprint(r.CEChunk)
	}
	return fmt.Sprintf("%-10s %6d %9s %9d %5d %5d %11.0f %14.0f %6.2f %11.1f %10.1f %11.1e %10s %7.2f %7.2f %12s %12s",
		r.Preset, r.V, chunk, r.Params, r.L, r.B, r.Go.TokensPerS, r.Py.TokensPerS, r.Ratio(), 1e3*r.Go.CPUS, 1e3*r.Py.CPUS, r.LossDiff,
		gflop(r.FLOPs), mfu(r.Go.TokensPerS, r.FLOPs, r.GEMM), mfu(r.Py.TokensPerS, r.FLOPs, r.GEMM), mib(r.GoRSS), mib(r.PyRSS))
}

// mib is bytes in MiB, "?" for unmeasured.
func mib(b int64) string {
	if b <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}
