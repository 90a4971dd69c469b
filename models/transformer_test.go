package models

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

func TestForwardShapes(t *testing.T) {
	torchx.Lock()
	for _, causal := range []bool{false, true} {
		for _, timeCond := range []bool{false, true} {
			t.Run(fmt.Sprintf("causal=%v/time=%v", causal, timeCond), func(t *testing.T) {
				torchx.Lock() // a subtest runs on its own goroutine
				spec := Spec{VocabIn: 51, VocabOut: 50, Causal: causal, TimeCond: timeCond}
				m, _ := newTestModel(t, testConfig(), spec, 1)
				x := tokenTensor(randomRows(3, 7, 51, 1))
				var sigma *ts.Tensor
				if timeCond {
					sigma = sigmaTensor(0.5, 1, 2)
				}
				for _, train := range []bool{false, true} {
					logits := m.Forward(x, sigma, train)
					if got := logits.MustSize(); !slices.Equal(got, []int64{3, 7, 50}) || logits.DType() != gotch.Float {
						t.Errorf("train=%v: logits %v %v, want float32 [3 7 50]", train, logits.DType(), got)
					}
					if !logits.MustRequiresGrad() {
						t.Errorf("train=%v: logits do not require grad", train)
					}
					logits.MustDrop()
				}
				if m.Spec() != spec {
					t.Errorf("Spec() = %+v, want %+v", m.Spec(), spec)
				}
			})
		}
	}
}

// TestCausality changes the token at position 5 and checks which logits
// move: none before it in the causal model, some in the bidirectional one.
func TestCausality(t *testing.T) {
	torchx.Lock()
	const l, j, v = 12, 5, 40
	rows := randomRows(2, l, v, 2)
	changed := randomRows(2, l, v, 2)
	for i := range changed {
		changed[i][j] = (changed[i][j] + 1) % v
	}
	for _, causal := range []bool{true, false} {
		m, _ := newTestModel(t, testConfig(), Spec{VocabIn: v, VocabOut: v, Causal: causal}, 3)
		a := forwardValues(m, tokenTensor(rows), nil)
		b := forwardValues(m, tokenTensor(changed), nil)
		var before, after float64 // largest change at positions < j and >= j
		for row := range 2 {
			base := row * l * v
			before = max(before, maxAbsDiff(a, b, base, base+j*v))
			after = max(after, maxAbsDiff(a, b, base+j*v, base+l*v))
		}
		if causal && before > 1e-6 {
			t.Errorf("causal: logits before the changed position moved by %g", before)
		}
		if !causal && before < 1e-4 {
			t.Errorf("bidirectional: logits before the changed position moved only %g", before)
		}
		if after < 1e-4 {
			t.Errorf("causal=%v: logits at and after the changed position moved only %g", causal, after)
		}
	}
}

// TestTimeConditioning: with adaLN-Zero the output cannot depend on σ at
// init; once the modulation weights move, it must.
func TestTimeConditioning(t *testing.T) {
	torchx.Lock()
	m, _ := newTestModel(t, testConfig(), Spec{VocabIn: 30, VocabOut: 30, TimeCond: true}, 4)
	x := tokenTensor(randomRows(2, 9, 30, 4))
	low, high := sigmaTensor(0.01, 0.01), sigmaTensor(5, 5)
	n := 2 * 9 * 30
	if d := maxAbsDiff(forwardValues(m, x, low), forwardValues(m, x, high), 0, n); d != 0 {
		t.Fatalf("at init the logits depend on sigma (max change %g)", d)
	}
	perturb(m.output.ada.w, 0.1)
	for _, b := range m.blocks {
		perturb(b.ada.w, 0.1)
	}
	if d := maxAbsDiff(forwardValues(m, x, low), forwardValues(m, x, high), 0, n); d < 1e-3 {
		t.Fatalf("with perturbed modulation the logits barely depend on sigma (max change %g)", d)
	}
}

func TestParameterNames(t *testing.T) {
	torchx.Lock()
	cfg := Config{Preset: "custom", Layers: 1, Width: 8, Heads: 2, MLPRatio: 2, CondDim: 4, MaxLen: 8, Attention: "math"}
	_, vs := newTestModel(t, cfg, Spec{VocabIn: 5, VocabOut: 4, TimeCond: true}, 5)
	want := map[string][]int64{
		"embed.weight":             {5, 8},
		"time.fc1.weight":          {4, 4},
		"time.fc1.bias":            {4},
		"time.fc2.weight":          {4, 4},
		"time.fc2.bias":            {4},
		"blocks.0.norm1.weight":    {8},
		"blocks.0.attn.qkv.weight": {24, 8},
		"blocks.0.attn.out.weight": {8, 8},
		"blocks.0.norm2.weight":    {8},
		"blocks.0.mlp.fc1.weight":  {16, 8},
		"blocks.0.mlp.fc1.bias":    {16},
		"blocks.0.mlp.fc2.weight":  {8, 16},
		"blocks.0.mlp.fc2.bias":    {8},
		"blocks.0.ada.weight":      {48, 4},
		"blocks.0.ada.bias":        {48},
		"output.norm.weight":       {8},
		"output.ada.weight":        {16, 4},
		"output.ada.bias":          {16},
		"output.proj.weight":       {4, 8},
		"output.proj.bias":         {4},
	}
	got := vs.Variables()
	for name, shape := range want {
		v, ok := got[name]
		if !ok {
			t.Errorf("missing parameter %s", name)
			continue
		}
		if s := v.MustSize(); !slices.Equal(s, shape) {
			t.Errorf("%s: shape %v, want %v", name, s, shape)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected parameter %s", name)
		}
	}
}

// TestFusedAttention: on a libtorch without scaled_dot_product_attention
// (1.13) New must refuse model.attention fused; where the op exists, both
// attention paths must agree.
func TestFusedAttention(t *testing.T) {
	torchx.Lock()
	cfg := testConfig()
	cfg.Attention = "fused"
	spec := Spec{VocabIn: 20, VocabOut: 20, Causal: true}
	if probeFused(gotch.CPU) != nil {
		torchx.Seed(1)
		_, err := New(nn.NewVarStore(gotch.CPU).Root(), cfg, spec)
		if err == nil || !strings.Contains(err.Error(), "model.attention: fused") {
			t.Fatalf("New with fused attention on this libtorch: err = %v, want a model.attention error", err)
		}
		return
	}
	for _, causal := range []bool{true, false} {
		spec.Causal = causal
		fused, _ := newTestModel(t, cfg, spec, 6)
		plain, _ := newTestModel(t, testConfig(), spec, 6)
		x := tokenTensor(randomRows(2, 10, 20, 6))
		if d := maxAbsDiff(forwardValues(fused, x, nil), forwardValues(plain, x, nil), 0, 2*10*20); d > 1e-5 {
			t.Errorf("causal=%v: fused and math attention differ by %g", causal, d)
		}
	}
}

// TestForwardFreesIntermediates counts gotch's live tensors around a
// forward pass: only the logits may survive it. The Go GC is off meanwhile
// so that no finalizer can free (and hide) a leaked intermediate.
func TestForwardFreesIntermediates(t *testing.T) {
	torchx.Lock()
	m, _ := newTestModel(t, testConfig(), Spec{VocabIn: 30, VocabOut: 30, Causal: true, TimeCond: true}, 7)
	x := tokenTensor(randomRows(2, 9, 30, 7))
	sigma := sigmaTensor(1, 2)
	runtime.GC()
	time.Sleep(100 * time.Millisecond) // let queued finalizers of earlier tests run
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	before := liveTensors()
	logits := m.Forward(x, sigma, true)
	if got := liveTensors(); got != before+1 {
		t.Errorf("live tensors: %d before Forward, %d after, want exactly one more (the logits)", before, got)
	}
	logits.MustDrop()
}

// liveTensors counts the tensors gotch has created and not yet freed.
func liveTensors() int {
	report := ts.CheckCMemLeak()
	_, list, _ := strings.Cut(report, "Tensors not been released: ")
	list, _, _ = strings.Cut(list, "\n")
	return len(regexp.MustCompile(`"[^"]*"`).FindAllString(list, -1))
}

// TestTrainingStepsDoNotGrowMemory runs forward passes with gradients
// recorded, the pattern that exposes a leaked autograd graph (each pass
// would keep every saved activation, ~10 MB here), and checks the
// process's resident memory stays flat. It catches leaks of C++ handles
// that counting gotch's tensors cannot see, such as gotch's in-place ops
// replacing a handle without freeing the old one.
func TestTrainingStepsDoNotGrowMemory(t *testing.T) {
	torchx.Lock()
	m, _ := newTestModel(t, testConfig(), Spec{VocabIn: 500, VocabOut: 500}, 14)
	x := tokenTensor(randomRows(4, 64, 500, 14))
	step := func() { m.Forward(x, nil, true).MustDrop() }
	for range 3 {
		step()
	}
	before := residentMB(t)
	for range 10 {
		step()
	}
	if grew := residentMB(t) - before; grew > 20 {
		t.Errorf("resident memory grew by %.0f MB over 10 forward passes", grew)
	}
}

// residentMB reads the process's resident set size.
func residentMB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	pages, err := strconv.Atoi(strings.Fields(string(b))[1])
	if err != nil {
		t.Fatal(err)
	}
	return float64(pages) * float64(os.Getpagesize()) / (1 << 20)
}
