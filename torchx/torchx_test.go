package torchx

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// TestTwoLayerNetTrains is the smoke test of the prepared build: a tiny MLP
// fits a fixed regression batch with libtorch's Adam on CPU.
func TestTwoLayerNetTrains(t *testing.T) {
	Lock()
	Seed(1)
	vs := nn.NewVarStore(gotch.CPU)
	l1 := nn.NewLinear(vs.Root().Sub("l1"), 4, 16, nn.DefaultLinearConfig())
	l2 := nn.NewLinear(vs.Root().Sub("l2"), 16, 1, nn.DefaultLinearConfig())
	opt, err := nn.DefaultAdamConfig().Build(vs, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	x := ts.MustRandn([]int64{32, 4}, gotch.Float, gotch.CPU)
	w := ts.MustOfSlice([]float32{1, -2, 0.5, 3}).MustView([]int64{4, 1}, true)
	y := x.MustMatmul(w, false)
	var first, last float64
	for step := 0; step < 50; step++ {
		s := NewScope()
		h := s.T(l1.Forward(x))
		h = s.T(h.MustRelu(false))
		pred := s.T(l2.Forward(h))
		loss := s.T(pred.MustMseLoss(y, 1, false))
		opt.MustZeroGrad()
		loss.MustBackward()
		if step == 0 {
			for i, v := range vs.TrainableVariables() {
				g := v.MustGrad(false)
				norm := g.MustNorm(true).Float64Values()[0]
				if norm == 0 {
					t.Fatalf("gradient of parameter %d is zero after backward", i)
				}
			}
		}
		opt.MustStep()
		v := loss.Float64Values()[0]
		if step == 0 {
			first = v
		}
		last = v
		s.Close()
	}
	if !(last < first/10) {
		t.Fatalf("loss did not fall tenfold in 50 steps: first %.4f last %.4f", first, last)
	}
}

func TestNoGradRestoresPreviousMode(t *testing.T) {
	Lock()
	if !GradEnabled() {
		t.Fatal("grad mode off at start")
	}
	NoGrad(func() {
		NoGrad(func() {})
		if GradEnabled() {
			t.Error("nested NoGrad switched grad mode back on inside the outer block")
		}
	})
	if !GradEnabled() {
		t.Error("grad mode not restored after NoGrad")
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	Lock()
	draw := func() []float64 {
		Seed(42)
		x := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		return x.Float64Values()
	}
	a, b := draw(), draw()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different draws: %v vs %v", a, b)
		}
	}
}

func TestParseDevice(t *testing.T) {
	Lock()
	cases := []struct {
		in, want, err string
	}{
		{"cpu", "cpu", ""},
		{"auto", "", ""},
		{"gpu", "", `device "gpu": want auto, cpu, cuda or cuda:N`},
		{"cuda:x", "", `device "cuda:x": the index after cuda: must be a non-negative integer`},
	}
	if !gotch.CUDA.IsAvailable() {
		cases = append(cases, struct{ in, want, err string }{"cuda", "", "libtorch sees no CUDA device"})
	}
	for _, c := range cases {
		d, err := ParseDevice(c.in)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseDevice(%q) error = %v, want %q", c.in, err, c.err)
			}
		case err != nil:
			t.Errorf("ParseDevice(%q): %v", c.in, err)
		case c.want != "" && DeviceName(d) != c.want:
			t.Errorf("ParseDevice(%q) = %s, want %s", c.in, DeviceName(d), c.want)
		}
	}
}

func TestThreads(t *testing.T) {
	Lock()
	prev := Threads()
	defer SetThreads(prev)
	SetThreads(1)
	if got := Threads(); got != 1 {
		t.Fatalf("Threads() = %d after SetThreads(1)", got)
	}
	// make setup installs OpenBLAS (pthreads): its pool must follow.
	if os.Getenv("OPENBLAS_NUM_THREADS") != "" {
		t.Skip("OPENBLAS_NUM_THREADS is set: it decides OpenBLAS's pool")
	}
	if got := BLASThreads(); got != 1 {
		t.Fatalf("BLASThreads() = %d after SetThreads(1), want 1 (is libtorch's BLAS OpenBLAS? see README, Troubleshooting)", got)
	}
}

func TestParseCPUMax(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"max 100000\n", 0, false},
		{"150000 100000\n", 2, true},
		{"100000 100000", 1, true},
		{"50000 100000", 1, true},
		{"400000 100000", 4, true},
		{"garbage", 0, false},
		{"-1 100000", 0, false},
	} {
		got, ok := parseCPUMax(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseCPUMax(%q) = %d, %v, want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	if n := UsableCPUs(); n < 1 || n > runtime.NumCPU() {
		t.Errorf("UsableCPUs() = %d, want 1..%d", n, runtime.NumCPU())
	}
}
