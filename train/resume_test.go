package train

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dlmlab/difflm/checkpoint"
	"github.com/dlmlab/difflm/torchx"
)

// Environment of the helper process.
const (
	helperDir    = "TRAIN_HELPER_DIR"    // run folder
	helperLosses = "TRAIN_HELPER_LOSSES" // file receiving "step loss" lines
	resumeSteps  = 40
)

// TestHelperTrainProcess is not a test by itself: TestKillAndResume runs
// the test binary again with -test.run selecting it and the environment
// above set, to have a training process it can kill.
func TestHelperTrainProcess(t *testing.T) {
	dir := os.Getenv(helperDir)
	if dir == "" {
		t.Skip("helper process for TestKillAndResume")
	}
	torchx.Lock()
	cfg := testConfig()
	cfg.Steps, cfg.MicroBatch, cfg.Warmup, cfg.Schedule = resumeSteps, 4, 5, "cosine"
	cfg.ClipNorm, cfg.EMA, cfg.CkptEvery, cfg.KeepLast, cfg.Seed = 0.5, 0.9, 5, 2, 7
	vs, m := newModel(true)
	tr, err := New(cfg, vs, dir, map[string]string{checkpoint.MetaConfig: "resume test"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Progress = nil
	f, err := os.OpenFile(os.Getenv(helperLosses), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The pause gives the parent time to kill the process mid-run; it
	// changes no number.
	slow := func(b Batch) (Loss, error) {
		time.Sleep(5 * time.Millisecond)
		return m.loss(b)
	}
	if err := tr.Run(context.Background(), &seqBatcher{vocab: 16, b: 8, l: 6}, slow, &memSink{w: f}, nil); err != nil {
		t.Fatal(err)
	}
}

// helper starts the helper process on dir, appending losses to losses.
func helper(t *testing.T, dir, losses string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTrainProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDir+"="+dir, helperLosses+"="+losses)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// readLosses parses the "step loss" lines written so far, in order.
func readLosses(t *testing.T, path string) (steps []int, losses map[int]float64) {
	t.Helper()
	losses = map[int]float64{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, losses
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue // a line cut by the kill
		}
		s, err1 := strconv.Atoi(fields[0])
		v, err2 := strconv.ParseFloat(fields[1], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		steps = append(steps, s)
		losses[s] = v
	}
	return steps, losses
}

// TestKillAndResume kills a training process with SIGKILL after it has
// written a checkpoint and gone past it, restarts it with resume: auto, and
// requires the losses of every step after the resume, and the final
// weights, to equal those of an uninterrupted run.
func TestKillAndResume(t *testing.T) {
	torchx.Lock()
	base := t.TempDir()
	refDir, refLosses := filepath.Join(base, "ref"), filepath.Join(base, "ref.txt")
	cmd, out := helper(t, refDir, refLosses)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	_, want := readLosses(t, refLosses)
	if len(want) != resumeSteps {
		t.Fatalf("uninterrupted run logged %d steps, want %d", len(want), resumeSteps)
	}

	dir, first, second := filepath.Join(base, "killed"), filepath.Join(base, "first.txt"), filepath.Join(base, "second.txt")
	cmd, out = helper(t, dir, first)
	killAt := 0
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if steps, _ := readLosses(t, first); len(steps) > 0 && steps[len(steps)-1] >= 13 {
			killAt = steps[len(steps)-1]
			break
		}
	}
	if killAt == 0 {
		t.Fatalf("the training process did not reach step 13 within a minute:\n%s", out)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill at step %d: %v", killAt, err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("the training process was not killed mid-run (wait: %v); it finished too fast:\n%s", err, out)
	}
	latest, err := checkpoint.Latest(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := checkpoint.Open(latest)
	if err != nil {
		t.Fatal(err)
	}
	resumed, _ := strconv.Atoi(r.Meta()[checkpoint.MetaStep])
	r.Close()
	if resumed < 10 || resumed >= resumeSteps {
		t.Fatalf("newest checkpoint after the kill is step %d", resumed)
	}

	cmd, out = helper(t, dir, second)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	steps, got := readLosses(t, second)
	if len(steps) == 0 || steps[0] != resumed+1 || steps[len(steps)-1] != resumeSteps {
		t.Fatalf("resumed run logged steps %v, want %d..%d", steps, resumed+1, resumeSteps)
	}
	for _, s := range steps {
		if d := math.Abs(got[s] - want[s]); d > 1e-5 {
			t.Errorf("step %d: resumed loss %.9g, uninterrupted %.9g", s, got[s], want[s])
		}
	}
	t.Logf("killed at step %d, resumed from step %d, %d steps compared", killAt, resumed, len(steps))

	a, _, err := checkpoint.Load(checkpoint.Path(refDir, resumeSteps))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := checkpoint.Load(checkpoint.Path(dir, resumeSteps))
	if err != nil {
		t.Fatal(err)
	}
	for name, x := range a {
		if err := closeTo(values(x), values(b[name]), 1e-5); err != nil {
			t.Errorf("final %s: %v", name, err)
		}
	}
}

func closeTo(a, b []float64, tol float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d values vs %d", len(a), len(b))
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return fmt.Errorf("element %d: %.9g vs %.9g", i, a[i], b[i])
		}
	}
	return nil
}
