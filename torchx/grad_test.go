package torchx

import (
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestGrads: the gradients of Σ roots for two roots and three inputs, one
// of them unused (nil), against their closed form; nothing lands in .grad.
func TestGrads(t *testing.T) {
	Lock()
	leaf := func(v ...float32) *ts.Tensor {
		x := ts.MustOfSlice(v)
		Inplace(x, func() { x.MustRequiresGrad_(true) })
		return x
	}
	a, b, c := leaf(1, 2), leaf(3, 4), leaf(5)
	r1 := a.MustMul(b, false).MustSum(gotch.Float, true) // Σ a·b
	r2 := a.MustSum(gotch.Float, false)                  // Σ a
	grads, err := Grads([]*ts.Tensor{r1, r2}, []*ts.Tensor{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if len(grads) != 3 || grads[2] != nil {
		t.Fatalf("grads %v, want three with the unused input's nil", grads)
	}
	if got := grads[0].Float64Values(); !slices.Equal(got, []float64{4, 5}) {
		t.Errorf("∂/∂a = %v, want b + 1 = [4 5]", got)
	}
	if got := grads[1].Float64Values(); !slices.Equal(got, []float64{1, 2}) {
		t.Errorf("∂/∂b = %v, want a = [1 2]", got)
	}
	for _, x := range []*ts.Tensor{a, b, c} {
		if g := x.MustGrad(false); g.MustDefined() {
			t.Errorf("an input's .grad is %v after Grads, want untouched (undefined)", g.Float64Values())
		}
	}
	if _, err := Grads([]*ts.Tensor{r1}, []*ts.Tensor{ts.MustOfSlice([]float32{1})}); err == nil {
		t.Error("Grads with respect to a tensor without requires_grad: no error")
	}
}

// TestWorkers: every worker runs its task at once on a thread of its own
// with one intra-op thread and gradients on, while the caller keeps its
// thread count.
func TestWorkers(t *testing.T) {
	Lock()
	SetThreads(2)
	w := NewWorkers(2)
	defer w.Close()
	started := make(chan struct{}, 2)
	var threads, grad [2]int
	w.Run(2, func(i int) {
		started <- struct{}{}
		for len(started) < 2 { // both at once, or this waits forever
		}
		threads[i] = Threads()
		if GradEnabled() {
			grad[i] = 1
		}
	})
	if threads != [2]int{1, 1} || grad != [2]int{1, 1} {
		t.Errorf("workers ran with %v intra-op threads and grad mode %v, want 1 and on", threads, grad)
	}
	if n := Threads(); n != 2 {
		t.Errorf("the caller's thread count is %d after the workers, want 2", n)
	}
}
