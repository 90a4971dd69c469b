package sampling

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"syscall"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// BenchConfig sizes the sampling-speed table: every sampler at every
// length and step count, on networks with random weights (speed does not
// depend on the weights; the number of calls of the cached sampler
// depends only on how many positions unmask per step).
type BenchConfig struct {
	Preset   string   // model preset
	Vocab    int      // V
	Batch    int      // sequences generated at once
	Lengths  []int    // L
	Steps    []int    // T; 0 stands for T = L
	Samplers []string // names from Names()
	BlockLen int      // block size of the block sampler (its window is L)
	Seed     int64
	// FullHead are samplers measured a second time with the output layer
	// on every position (a row "<name>/full-head"), the cost the masked-only
	// head (models.Transformer.ForwardRows) saves in every step.
	FullHead []string
}

// DefaultBenchConfig is the table of the project report: small-cpu with a
// CPU-sized trimmed vocabulary, L = 128 and 256, T up to 256 and T = L.
func DefaultBenchConfig() BenchConfig {
	return BenchConfig{
		Preset:   "small-cpu",
		Vocab:    8192,
		Batch:    4,
		Lengths:  []int{128, 256},
		Steps:    []int{16, 32, 64, 128, 256, 0},
		Samplers: Names(),
		BlockLen: 32,
		Seed:     1,
		FullHead: []string{"ancestral-cached", "confidence"},
	}
}

// BenchRow is one measured run. CPU time (this process, all threads) is
// reported beside wall time: on a shared machine it is the steadier of
// the two, and with one libtorch thread they agree when the machine is
// otherwise idle.
type BenchRow struct {
	Sampler      string
	L, T         int // T is L for ar: one call per token
	ModelCalls   int
	Seconds      float64 // wall time
	CPUSeconds   float64
	TokensPerSec float64 // per wall second
	TokensPerCPU float64 // per CPU second
}

// BenchTable measures every sampler of cfg and writes the table to w as
// rows complete. Call it on a torchx.Lock'ed thread.
func BenchTable(ctx context.Context, cfg BenchConfig, w io.Writer) ([]BenchRow, error) {
	maxLen := slices.Max(cfg.Lengths)
	proc := forward.NewAbsorbing(cfg.Vocab, forward.LogLinear{Eps: 1e-3})
	nets := map[string]Net{}
	for _, name := range []string{"mdlm", "sedd", "ar", "bd3lm", "vdm"} {
		oc := losses.DefaultConfig()
		oc.Name, oc.BlockSize = name, min(cfg.BlockLen, slices.Min(cfg.Lengths))
		var obj losses.Objective
		var err error
		switch name {
		case "ar":
			obj, err = losses.New(oc, nil, cfg.Vocab)
		case "vdm":
			obj, err = losses.NewVDM(oc, forward.Gaussian{Dim: 16, GammaMin: -13.3, GammaMax: 5}, cfg.Vocab)
		default:
			obj, err = losses.New(oc, proc, cfg.Vocab)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: %s objective: %w", name, err)
		}
		spec := obj.Spec()
		torchx.Seed(cfg.Seed)
		mc := models.DefaultConfig()
		mc.Preset, mc.Dropout, mc.MaxLen = cfg.Preset, 0, maxLen
		m, err := models.New(nn.NewVarStore(gotch.CPU).Root(), mc, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut,
			Causal: spec.Causal, TimeCond: spec.TimeCond, BlockSize: spec.BlockSize, EmbedDim: spec.EmbedDim})
		if err != nil {
			return nil, fmt.Errorf("bench: %s model: %w", name, err)
		}
		nets[name] = Net{Model: m, Objective: obj}
	}
	var rows []BenchRow
	for _, l := range cfg.Lengths {
		fmt.Fprintf(w, "# L=%d: one forward pass of the bidirectional network on %d×%d tokens takes %.3f s, of the causal one on %d new tokens with a cache of %d %.4f s\n",
			l, cfg.Batch, l, forwardSeconds(nets["mdlm"].Model, cfg.Batch, l, cfg.Vocab+1), cfg.Batch, l-1, cachedStepSeconds(nets["ar"].Model.(CachedLM), cfg.Batch, l))
		fmt.Fprintf(w, "%-27s %5s %5s %6s %8s %8s %10s %10s\n", "sampler", "L", "T", "calls", "wall-s", "cpu-s", "tok/s", "tok/cpu-s")
		for _, name := range cfg.Samplers {
			steps := benchSteps(name, l, cfg.Steps)
			heads := []bool{false}
			if slices.Contains(cfg.FullHead, name) {
				heads = append(heads, true)
			}
			for _, full := range heads {
				for _, t := range steps {
					row, err := benchRun(ctx, cfg, name, l, t, proc, nets, full)
					if err != nil {
						return rows, err
					}
					rows = append(rows, row)
					fmt.Fprintf(w, "%-27s %5d %5d %6d %8.2f %8.2f %10.1f %10.1f\n", row.Sampler, row.L, row.T, row.ModelCalls, row.Seconds, row.CPUSeconds, row.TokensPerSec, row.TokensPerCPU)
				}
			}
		}
	}
	return rows, nil
}

// benchSteps is the list of T for one sampler and length, without
// repeats; ar has only one (its own, L).
func benchSteps(name string, l int, steps []int) []int {
	if name == "ar" || name == "ar-nocache" {
		return []int{l}
	}
	var out []int
	for _, t := range steps {
		if t == 0 {
			t = l
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// fullHead hides the model's ForwardRows (and everything else but
// Forward), so that an objective computes the logits of every position.
type fullHead struct{ m losses.Net }

func (f fullHead) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	return f.m.Forward(x, sigma, train)
}

// benchRun generates one batch and times it; full runs the MDLM network
// with the output layer on every position (row "<name>/full-head").
func benchRun(ctx context.Context, cfg BenchConfig, name string, l, t int, proc forward.Process, nets map[string]Net, full bool) (BenchRow, error) {
	sc := DefaultConfig()
	sc.BatchSize, sc.BlockLen, sc.Window = cfg.Batch, min(cfg.BlockLen, l), l
	var p forward.Process = proc
	net := nets["mdlm"]
	switch name {
	case "ar", "ar-nocache":
		p, net = nil, nets["ar"]
	case "sedd-analytic", "sedd-euler":
		net = nets["sedd"]
	case "ddpm":
		p, net = nil, nets["vdm"]
	case "block-cached":
		// BD3-LM's own sampler, on a BD3-LM network of block size block_len.
		net = nets["bd3lm"]
		sc.BlockLen = net.Objective.Spec().BlockSize
	}
	label := name
	if full {
		net.Model, label = fullHead{net.Model}, name+"/full-head"
	}
	s, err := New(name, sc, p, net)
	if err != nil {
		return BenchRow{}, err
	}
	start, cpu := time.Now(), cpuSeconds()
	res, err := s.Generate(ctx, Request{N: cfg.Batch, Len: l, Steps: t, Temperature: 1, TopP: 1, Seed: cfg.Seed})
	if err != nil {
		return BenchRow{}, err
	}
	secs, cpuSecs := time.Since(start).Seconds(), cpuSeconds()-cpu
	tokens := float64(cfg.Batch * l)
	return BenchRow{Sampler: label, L: l, T: t, ModelCalls: res.ModelCalls, Seconds: secs, CPUSeconds: cpuSecs,
		TokensPerSec: tokens / secs, TokensPerCPU: tokens / cpuSecs}, nil
}

// cpuSeconds is the user and system time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// forwardSeconds times one forward pass of m on random states [b,l] below
// states (after one pass to warm up).
func forwardSeconds(m losses.Net, b, l, states int) float64 {
	x := ts.MustRandint(int64(states), []int64{int64(b), int64(l)}, gotch.Int64, gotch.CPU)
	defer x.MustDrop()
	var secs float64
	torchx.NoGrad(func() {
		m.Forward(x, nil, false).MustDrop()
		start := time.Now()
		m.Forward(x, nil, false).MustDrop()
		secs = time.Since(start).Seconds()
	})
	return secs
}

// cachedStepSeconds times the last step of cached decoding: b new tokens
// after l−1 cached ones.
func cachedStepSeconds(m CachedLM, b, l int) float64 {
	x := ts.MustZeros([]int64{int64(b), int64(l - 1)}, gotch.Int64, gotch.CPU)
	one := ts.MustZeros([]int64{int64(b), 1}, gotch.Int64, gotch.CPU)
	defer x.MustDrop()
	defer one.MustDrop()
	cache := m.NewKVCache()
	defer cache.Close()
	m.ForwardCached(x, nil, cache).MustDrop()
	start := time.Now()
	m.ForwardCached(one, nil, cache).MustDrop()
	return time.Since(start).Seconds()
}
