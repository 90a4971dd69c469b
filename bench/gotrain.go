package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
	"github.com/dlmlab/difflm/train"
)

// Setup is what the benchmark takes from the experiment's configuration:
// the sections the training step is built from. The bench decides the
// model preset, max_len, batch size and step count of each row; the rest
// (dropout, schedule ε, AdamW, clipping, EMA, seed) is the experiment's.
type Setup struct {
	Model     models.Config
	Process   forward.Config
	Objective losses.Config
	Train     train.Config
	Vocab     int // real tokens V
	Threads   int // libtorch intra-op threads on both sides
}

// check rejects the setups torch_train.py does not reproduce.
func (s Setup) check() error {
	switch {
	case s.Objective.Name != "mdlm" && s.Objective.Name != "ar":
		return fmt.Errorf("objective.name: the bench trains mdlm or ar, got %s", s.Objective.Name)
	case s.Objective.Steps != 0:
		return fmt.Errorf("objective.steps: the bench trains the continuous-time bound (0), got %d", s.Objective.Steps)
	case s.Objective.Name == "mdlm" && (s.Process.Name != "absorbing" || s.Process.Schedule != "loglinear"):
		return fmt.Errorf("process: the bench's mdlm needs the absorbing process with the loglinear schedule, got %s with %s", s.Process.Name, s.Process.Schedule)
	case s.Model.Attention != "math":
		return fmt.Errorf("model.attention: the bench compares the math attention both sides have, got %s", s.Model.Attention)
	case s.Vocab < 2:
		return fmt.Errorf("data.vocab_size: %d, want at least 2 tokens", s.Vocab)
	case s.Threads < 1:
		return fmt.Errorf("threads: %d, the bench needs an explicit count for both sides", s.Threads)
	}
	return nil
}

// Case is one row: a preset at one sequence length and batch size, with
// the files both sides read (initial weights and batches).
type Case struct {
	Preset  string
	L, B    int
	Vocab   int // real tokens V
	CEChunk int // the Go side's objective.ce_chunk
	Steps   int // optimizer steps of a run, warmup included
	Weights string
	Batches string
	tokens  [][]int64 // one batch per step, row-major B×L
}

// Result is one run's per-step measurements; the timed steps are
// Step[warmup:], and Loss holds every step's loss.
type Result struct {
	StepS, CPUS []float64 // wall and process CPU seconds per step
	Loss        []float64
	Params      int64
	Shapes      map[string][]int64 // parameter names and shapes
	PeakRSS     int64              // peak resident bytes during the run (0: unknown)
}

// modelConfig is the experiment's model section with c's preset and length.
func (s Setup) modelConfig(c Case) models.Config {
	return models.Config{Preset: c.Preset, Dropout: s.Model.Dropout, MaxLen: c.L, Attention: s.Model.Attention, Lanes: s.Model.Lanes}
}

// trainConfig is the experiment's trainer with the bench's step count and
// batch: a constant learning rate (no warmup, so both sides use the same
// rate at every step), fp32 on the CPU, no evaluation, the metrics of
// every step, and only the trainer's final checkpoint (written after the
// last timed step).
func (s Setup) trainConfig(c Case) train.Config {
	t := s.Train
	t.Steps, t.BatchSize, t.MicroBatch = c.Steps, c.B, 0
	t.Warmup, t.Schedule = 0, "constant"
	t.Device, t.Precision, t.Threads = "cpu", "fp32", s.Threads
	t.Resume, t.CkptEvery, t.KeepLast, t.EvalEvery, t.LogEvery = "never", 0, 1, 0, 1
	return t
}

// goRun trains c's model with the project's code path (objective, model,
// trainer) for c.Steps steps in a fresh run folder under dir, and writes
// the initial weights to c.Weights for the PyTorch side. The caller must
// be torchx.Lock'ed.
func goRun(ctx context.Context, s Setup, c Case, dir string) (Result, error) {
	torchx.Seed(int64(s.Train.Seed))
	resetPeakRSS()
	var proc forward.Process
	if s.Objective.Name != "ar" {
		p, err := forward.New(s.Process, c.Vocab, gotch.CPU)
		if err != nil {
			return Result{}, err
		}
		proc = p
	}
	ocfg := s.Objective
	ocfg.CEChunk = c.CEChunk
	obj, err := losses.New(ocfg, proc, c.Vocab)
	if err != nil {
		return Result{}, err
	}
	spec := obj.Spec()
	vs := nn.NewVarStore(gotch.CPU)
	net, err := models.New(vs.Root(), s.modelConfig(c), models.Spec{
		VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal, TimeCond: spec.TimeCond, BlockSize: spec.BlockSize})
	if err != nil {
		return Result{}, err
	}
	if err := checkpoint.ExportModel(c.Weights, vs, nil); err != nil {
		return Result{}, err
	}
	runDir, err := os.MkdirTemp(dir, "go-run-")
	if err != nil {
		return Result{}, fmt.Errorf("go run folder: %w", err)
	}
	defer os.RemoveAll(runDir)
	tr, err := train.New(s.trainConfig(c), vs, filepath.Join(runDir, "run"), nil)
	if err != nil {
		return Result{}, err
	}
	tr.Progress = nil
	clock := &clockBatches{tokens: c.tokens, b: c.B, l: c.L}
	sink := &lossSink{}
	if err := tr.Run(ctx, clock, losses.TrainStep(obj, net, gotch.CPU), sink, nil); err != nil {
		return Result{}, err
	}
	res := Result{Loss: sink.loss, Params: net.NumParams(), Shapes: map[string][]int64{}, PeakRSS: peakRSS()}
	res.StepS, res.CPUS = clock.durations()
	for name, v := range vs.Variables() {
		res.Shapes[name] = v.MustSize()
	}
	return res, nil
}

// clockBatches hands out the prepared batches and notes the wall and CPU
// clocks at every request: the trainer asks for a batch at the start of
// each step, so consecutive requests bracket one whole step (seeding,
// forward, backward, clipping, AdamW, EMA, logging).
type clockBatches struct {
	tokens [][]int64
	b, l   int
	next   int
	wall   []time.Time
	cpu    []float64
}

func (c *clockBatches) Next() (train.Batch, error) {
	c.wall = append(c.wall, time.Now())
	c.cpu = append(c.cpu, cpuSeconds())
	if c.next >= len(c.tokens) {
		return train.Batch{}, fmt.Errorf("bench: batch %d of %d prepared", c.next+1, len(c.tokens))
	}
	b := train.Batch{Tokens: c.tokens[c.next], B: c.b, L: c.l}
	c.next++
	return b, nil
}

// State and Restore are never used: runs start fresh and are not resumed.
func (c *clockBatches) State() ([]byte, error) { return nil, nil }
func (c *clockBatches) Restore([]byte) error   { return fmt.Errorf("bench: runs are not resumed") }

// durations are the wall and CPU seconds of every step but the last (whose
// end no request marks).
func (c *clockBatches) durations() (wall, cpu []float64) {
	for i := 1; i < len(c.wall); i++ {
		wall = append(wall, c.wall[i].Sub(c.wall[i-1]).Seconds())
		cpu = append(cpu, c.cpu[i]-c.cpu[i-1])
	}
	return wall, cpu
}

// cpuSeconds is the user and system time of this process, all threads.
func cpuSeconds() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		panic(fmt.Errorf("getrusage: %w", err)) // cannot fail for RUSAGE_SELF
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e9
}

// lossSink keeps the loss of every step (train.log_every is 1).
type lossSink struct{ loss []float64 }

func (l *lossSink) LogMetrics(step int, split string, m map[string]float64) error {
	if split == "train" {
		l.loss = append(l.loss, m["loss"])
	}
	return nil
}

// resetPeakRSS returns the heap's free memory to the OS and resets this
// process's resident-memory high-water mark (Linux: 5 into
// /proc/self/clear_refs), so that peakRSS measures one run above what
// stays loaded (libtorch, the Go runtime); where the reset is not
// possible, peakRSS reports the process's peak so far.
func resetPeakRSS() {
	runtime.GC() // the previous run's tensors, freed by finalizers
	torchx.TrimHeap()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM of /proc/self/status in bytes (0 where unreadable).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err == nil {
				return kib << 10
			}
		}
	}
	return 0
}
