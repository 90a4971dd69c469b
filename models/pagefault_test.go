package models

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/nn"
)

// TestStepsReuseFreedMemory: a training step frees its activations and
// allocates them again the next step; glibc must hand the same memory back
// rather than return it to the OS and fault every page in again. With the
// trim threshold left at glibc's 128 kB (what fixing the mmap threshold in
// torchx leaves) the tiny preset at B = 8, L = 128 faulted 16 MB of
// fresh pages a step, with torchx's 64 MB 0.2–0.5 MB.
func TestStepsReuseFreedMemory(t *testing.T) {
	if strings.Contains(os.Getenv("GLIBC_TUNABLES"), "threshold") {
		t.Skip("GLIBC_TUNABLES sets malloc thresholds")
	}
	torchx.Lock()
	const batch, length, vocab, steps = 8, 128, 64, 5
	cfg := withPreset("tiny")
	cfg.MaxLen = length
	m, vs := newTestModel(t, cfg, Spec{VocabIn: vocab + 1, VocabOut: vocab}, 1)
	opt, err := nn.DefaultAdamConfig().Build(vs, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	x := tokenTensor(randomRows(batch, length, vocab, 1))
	defer x.MustDrop()
	step := func() { trainingStep(opt, m, x, nil) }
	for range 3 {
		step() // first touches, allocator caches
	}
	faults := func() int64 {
		var u syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
			t.Fatal(err)
		}
		return u.Minflt
	}
	before := faults()
	for range steps {
		step()
	}
	perStep := float64(faults()-before) * float64(os.Getpagesize()) / steps / (1 << 20)
	t.Logf("%.2f MB of page faults per step", perStep)
	if perStep > 4 {
		t.Errorf("%.2f MB of fresh pages per step: freed activations go back to the OS instead of being reused (torchx trim threshold)", perStep)
	}
}
