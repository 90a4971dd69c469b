package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dlmlab/difflm/results"
)

// These tests run the real command as a user would: a built binary, a
// config file, a database in a temporary folder. Each run is tiny (a few
// training steps of the tiny model on a trimmed vocabulary).

func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "experiments")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func dataDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("DATA_DIR"); d != "" {
		return d
	}
	d, _ := filepath.Abs("../../shared/data")
	if _, err := os.Stat(filepath.Join(d, "tinyshakespeare/input.txt")); err != nil {
		t.Skipf("no data: set DATA_DIR (looked in %s)", d)
	}
	return d
}

// tinySweep is two variants × one seed, a handful of steps each.
func tinySweep(t *testing.T, dir string, variants string) string {
	t.Helper()
	cfg := `name: e2e
out_dir: ` + dir + `
threads: 1
data:
  dir: ` + dataDir(t) + `
  train: [tinyshakespeare/input.txt]
  seq_len: 32
  tokenizer: gpt2
  vocab_size: 256
  cache_dir: ` + filepath.Join(dir, "cache") + `
model:
  preset: tiny
train:
  steps: 6
  warmup: 2
  batch_size: 4
  ckpt_every: 3
  eval_every: 3
  log_every: 2
eval:
  t_draws: 2
  batch_size: 4
  max_batches: 2
  lambada: lambada/lambada_test.jsonl
  lambada_limit: 4
  zero_shot: []
  gen_steps: [4, 8]
  gen_samples: 2
sampling:
  batch_size: 2
sweep:
  name: e2e
  variants:
` + variants
	p := filepath.Join(dir, "sweep.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const twoVariants = `    - name: mdlm
      set: [process.name=absorbing, objective.name=mdlm, sampling.sampler=ancestral-cached]
    - name: ar
      after: [mdlm]
      set: [process.name=none, objective.name=ar, sampling.sampler=ar]
`

func runCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, tail(errOut.String(), 3000))
	}
	return out.String() + errOut.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSweepEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := tinySweep(t, dir, twoVariants)
	out := runCmd(t, bin, "-cfg", cfg, "-parallel", "2")
	for _, v := range []string{"mdlm", "ar"} {
		if _, err := os.Stat(filepath.Join(dir, "e2e", v, "log.txt")); err != nil {
			t.Errorf("parallel run %s wrote no log.txt: %v\n%s", v, err, tail(out, 2000))
		}
	}

	store, err := results.Open(filepath.Join(dir, "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runs, err := store.Runs(results.RunFilter{Sweep: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs recorded, want 2", len(runs))
	}
	byName := map[string]results.Run{}
	for _, r := range runs {
		byName[r.Variant] = r
	}
	if ar, mdlm := byName["ar"], byName["mdlm"]; ar.StartedAt.Before(mdlm.FinishedAt) {
		t.Errorf("ar (after: [mdlm]) started %v, before mdlm finished %v", ar.StartedAt, mdlm.FinishedAt)
	}
	for _, r := range runs {
		if r.Status != results.StatusFinished {
			t.Errorf("run %s: status %s (%s)", r.Name, r.Status, r.Error)
		}
		pts, err := store.Metrics(r.ID, "loss")
		if err != nil || len(pts) == 0 {
			t.Errorf("run %s: no loss metrics (%v)", r.Name, err)
		}
		evs, err := store.Evaluations([]int64{r.ID})
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, e := range evs {
			have[e.Task+"/"+e.Metric] = true
		}
		for _, want := range []string{"valid/ppl_bound", "test/ppl_bound", "lambada/ppl_bound", "lambada/accuracy"} {
			if !have[want] {
				t.Errorf("run %s: no %s evaluation (have %v)", r.Name, want, have)
			}
		}
		samples, err := store.Samples(r.ID)
		if err != nil || len(samples) == 0 {
			t.Errorf("run %s: no samples (%v)", r.Name, err)
		}
	}

	rep := runCmd(t, bin, "-cfg", cfg, "-mode", "report")
	for _, want := range []string{"mdlm", "ar", "ppl_bound"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report", "e2e", "report.md"))
	if err != nil || !strings.Contains(string(md), "| mdlm") || !strings.Contains(string(md), "2 of 2 runs finished") {
		t.Errorf("report.md missing, or without the mdlm row or the run costs: %v\n%s", err, md)
	}
	doc := filepath.Join(dir, "study.md")
	os.WriteFile(doc, []byte("intro\n"+docBegin+"\n"+docEnd+"\nreading\n"), 0o644)
	runCmd(t, bin, "-cfg", cfg, "-mode", "report", "-doc", doc)
	if got, _ := os.ReadFile(doc); !strings.Contains(string(got), "intro\n"+docBegin+"\n"+string(md)+docEnd+"\nreading\n") {
		t.Errorf("-doc did not splice report.md between the markers:\n%s", got)
	}

	plotOut, err := exec.Command(bin, "-cfg", cfg, "-mode", "plot").Output()
	if err != nil {
		t.Fatalf("plot: %v", err)
	}
	files := strings.Fields(string(plotOut))
	var pngs, svgs int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(f) {
		case ".png":
			pngs++
			if _, err := png.Decode(bytes.NewReader(b)); err != nil {
				t.Errorf("%s: not a PNG: %v", f, err)
			}
		case ".svg":
			svgs++
			var root struct{ XMLName xml.Name }
			if err := xml.Unmarshal(b, &root); err != nil || root.XMLName.Local != "svg" {
				t.Errorf("%s: not an SVG (%v, root %q)", f, err, root.XMLName.Local)
			}
		}
	}
	if pngs == 0 || pngs != svgs {
		t.Errorf("plots: %d PNG and %d SVG files: %v", pngs, svgs, files)
	}
}

// TestSweepKilledAndRestarted kills a sweep (SIGKILL, no chance to clean
// up) once its first run has finished, starts it again, and checks that
// every run finishes and nothing is recorded twice.
func TestSweepKilledAndRestarted(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := tinySweep(t, dir, twoVariants+`    - name: mdlm2
      set: [process.name=absorbing, objective.name=mdlm, sampling.sampler=ancestral]
`)
	cmd := exec.Command(bin, "-cfg", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // kill the children too
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "results.db")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if n := finishedRuns(t, db); n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("no run finished in time:\n%s", tail(out.String(), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	before := evaluationCounts(t, db)

	again := runCmd(t, bin, "-cfg", cfg)
	if !strings.Contains(again, "finished already, skipping") {
		t.Errorf("restart did not skip the finished run:\n%s", tail(again, 2000))
	}
	if n := finishedRuns(t, db); n != 3 {
		t.Fatalf("%d runs finished after the restart, want 3", n)
	}
	after := evaluationCounts(t, db)
	for name, n := range before {
		if after[name] != n {
			t.Errorf("run %s: %d evaluation rows before the restart, %d after", name, n, after[name])
		}
	}
	// A third start has nothing to do.
	runCmd(t, bin, "-cfg", cfg)
	if final := evaluationCounts(t, db); len(final) != 3 {
		t.Errorf("evaluation rows for %d runs, want 3", len(final))
	}
}

func finishedRuns(t *testing.T, db string) int {
	if _, err := os.Stat(db); err != nil {
		return 0
	}
	return len(evaluationCounts(t, db))
}

// evaluationCounts maps each finished run to its number of evaluation rows.
func evaluationCounts(t *testing.T, db string) map[string]int {
	out := map[string]int{}
	forEvaluations(t, db, results.RunFilter{Status: []results.Status{results.StatusFinished}}, func(r results.Run, evs []results.Evaluation) {
		out[r.Name] = len(evs)
	})
	return out
}

// forEvaluations calls fn with the evaluations of every run matching f.
func forEvaluations(t *testing.T, db string, f results.RunFilter, fn func(results.Run, []results.Evaluation)) {
	t.Helper()
	store, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	runs, err := store.Runs(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		evs, err := store.Evaluations([]int64{r.ID})
		if err != nil {
			t.Fatal(err)
		}
		fn(r, evs)
	}
}

// TestCharSweepEndToEnd: a character-level (text8-normalised) sweep records
// bits per character beside the unigram model's, the report compares the
// variants paired against report.reference, and -mode eval on the sweep
// evaluates the finished runs again to the same numbers.
func TestCharSweepEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := tinySweep(t, dir, twoVariants)
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	char := strings.Replace(string(text), "  tokenizer: gpt2\n  vocab_size: 256\n", "  tokenizer: char\n", 1) + "report:\n  reference: mdlm\n"
	if err := os.WriteFile(cfg, []byte(char), 0o644); err != nil {
		t.Fatal(err)
	}
	runCmd(t, bin, "-cfg", cfg, "-parallel", "2")
	db := filepath.Join(dir, "results.db")
	values := func() map[string]float64 {
		out := map[string]float64{}
		forEvaluations(t, db, results.RunFilter{Sweep: "e2e"}, func(r results.Run, evs []results.Evaluation) {
			for _, e := range evs {
				if len(e.Params) == 0 {
					out[r.Variant+" "+e.Task+"/"+e.Metric] = e.Value
				}
			}
		})
		return out
	}
	first := values()
	for _, key := range []string{"mdlm test/bpc", "ar test/bpc", "ar valid/unigram_bpc", "mdlm lambada/bpc"} {
		if v, ok := first[key]; !ok || !(v > 0 && v < 10) {
			t.Errorf("%s = %v (recorded: %v), want a bits-per-character value", key, v, ok)
		}
	}
	// bpc = nats/(bytes·ln 2) and EOS tokens have no bytes: at or above
	// the nats per token in bits, and not far above (few EOS).
	if bpc, bits := first["ar test/bpc"], first["ar test/nll"]/math.Ln2; bpc < bits || bpc > 1.2*bits {
		t.Errorf("ar test bpc %g against %g bits per token", bpc, bits)
	}
	rep := runCmd(t, bin, "-cfg", cfg, "-mode", "report")
	for _, want := range []string{"test/bpc", "Δ test/bpc vs mdlm", "bits per character"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	runCmd(t, bin, "-cfg", cfg, "-mode", "eval")
	again := values()
	for k, v := range first {
		if again[k] != v && !(math.IsNaN(v) && math.IsNaN(again[k])) {
			t.Errorf("%s: %v first, %v after -mode eval", k, v, again[k])
		}
	}
}

// TestNothingRecordedBeforeItCanRun: a run whose data file is missing
// fails naming the file and leaves no run row (nor a database) behind.
func TestNothingRecordedBeforeItCanRun(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "missing.yaml")
	os.WriteFile(cfg, []byte("name: missing\nout_dir: "+dir+"\ndata:\n  dir: "+dir+"\n  train: [nope.txt]\n  cache_dir: "+filepath.Join(dir, "cache")+"\n"), 0o644)
	cmd := exec.Command(bin, "-cfg", cfg)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nope.txt") {
		t.Fatalf("run with a missing data file: %v\n%s", err, tail(string(out), 2000))
	}
	db := filepath.Join(dir, "results.db")
	if _, err := os.Stat(db); err == nil {
		store, err := results.Open(db)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if runs, _ := store.Runs(results.RunFilter{}); len(runs) != 0 {
			t.Errorf("%d run rows recorded for a run that could not start", len(runs))
		}
	}
}

// TestInterruptAndResume sends a real SIGINT to a training run: it writes
// a checkpoint at the current step, is recorded as interrupted (not
// failed) and exits 130; started again it resumes and logs, for every step
// after the checkpoint, the same loss as an uninterrupted run.
func TestInterruptAndResume(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := tinySweep(t, dir, twoVariants)
	text, _ := os.ReadFile(cfg)
	single := strings.Split(string(text), "sweep:")[0]
	single = strings.Replace(single, "  steps: 6\n", "  steps: 120\n", 1)
	single = strings.Replace(single, "  ckpt_every: 3\n", "  ckpt_every: 1000\n", 1)
	single = strings.Replace(single, "  log_every: 2\n", "  log_every: 1\n", 1)
	single = strings.Replace(single, "  gen_steps: [4, 8]\n", "  gen_steps: [4]\n", 1)
	os.WriteFile(cfg, []byte(single), 0o644)
	db := filepath.Join(dir, "results.db")
	losses := func(name string) map[int]float64 { return trainLosses(t, db, name) }
	runCmd(t, bin, "-cfg", cfg, "-set", "name=ref", "-mode", "train")
	want := losses("ref")

	cmd := exec.Command(bin, "-cfg", cfg, "-set", "name=cut", "-mode", "train")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); len(losses("cut")) < 20; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no 20 steps within 2 minutes:\n%s", tail(out.String(), 2000))
		}
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d (%v), want 130:\n%s", code, err, tail(out.String(), 2000))
	}
	store, err := results.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := store.RunStatus("cut")
	store.Close()
	if st != results.StatusInterrupted {
		t.Errorf("status %q after SIGINT, want interrupted", st)
	}
	ckpts, _ := filepath.Glob(filepath.Join(dir, "cut", "ckpt-*.safetensors"))
	if len(ckpts) != 1 {
		t.Fatalf("checkpoints after SIGINT: %v", ckpts)
	}
	var at int
	fmt.Sscanf(filepath.Base(ckpts[0]), "ckpt-%d.safetensors", &at)
	if at < 20 || at >= 120 {
		t.Fatalf("interrupt checkpoint at step %d", at)
	}
	runCmd(t, bin, "-cfg", cfg, "-set", "name=cut", "-mode", "train")
	got := losses("cut")
	for s := at + 1; s <= 120; s++ {
		if g, w := got[s], want[s]; math.Abs(g-w) > 1e-6 || g == 0 {
			t.Errorf("step %d: resumed loss %v, uninterrupted %v", s, g, w)
		}
	}
}

// TestFrontierEndToEnd trains AR, MDLM and BD3-LM for a few steps, then
// -mode frontier decodes them at two batch sizes: every setting is
// recorded (task frontier), the table compares each with AR+KV, and one
// figure per batch size is drawn.
func TestFrontierEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := tinySweep(t, dir, `    - name: ar
      set: [process.name=none, objective.name=ar, sampling.sampler=ar, eval.ar_reference=self]
    - name: mdlm
      after: [ar]
      set: [process.name=absorbing, objective.name=mdlm, sampling.sampler=ancestral-cached]
    - name: bd3lm
      after: [ar]
      set: [process.name=absorbing, objective.name=bd3lm, objective.block_size=8, sampling.sampler=block-cached, sampling.block_len=8, sampling.window=32]
`)
	runCmd(t, bin, "-cfg", cfg, "-set", "eval.gen_steps=[4]")
	ref := filepath.Join(dir, "e2e", "ar", "model.safetensors")
	out := runCmd(t, bin, "-cfg", cfg, "-mode", "frontier", "-set", "eval.ar_reference="+ref, "-set", "frontier.batches=[1,2]",
		"-set", "frontier.samples=2", "-set", "frontier.steps=[4]", "-set", "frontier.thresholds=[0.5]", "-set", "frontier.long_length=48")
	for _, want := range []string{"batch 1, L = 32", "batch 2, L = 32", "batch 1, L = 48", "×AR", "KV cache", "ancestral-cached", "confidence", "dual τ=0.5", "block-cached"} {
		if !strings.Contains(out, want) {
			t.Errorf("frontier output lacks %q:\n%s", want, tail(out, 4000))
		}
	}
	if !strings.Contains(out, "faster than AR+KV") && !strings.Contains(out, "no diffusion setting is faster than AR+KV") {
		t.Errorf("frontier output says nothing against AR+KV:\n%s", tail(out, 3000))
	}
	points := map[string]int{}
	forEvaluations(t, filepath.Join(dir, "results.db"), results.RunFilter{Sweep: "e2e"}, func(r results.Run, evs []results.Evaluation) {
		for _, e := range evs {
			if e.Task == results.TaskFrontier && e.Metric == results.MetricTokensPerS && e.Value > 0 {
				points[r.Variant]++
			}
		}
	})
	// ar: 2 lengths × 2 batches; mdlm: (T=4, τ, dual τ) × 2 batches; bd3lm: 2 lengths × 2 batches.
	if points["ar"] != 4 || points["mdlm"] != 6 || points["bd3lm"] != 4 {
		t.Errorf("frontier points per variant %v, want ar 4, mdlm 6, bd3lm 4", points)
	}
	for _, f := range []string{"frontier_b1_L32.png", "frontier_b2_L32.svg", "frontier_b1_L48.png"} {
		if _, err := os.Stat(filepath.Join(dir, "report", "e2e", f)); err != nil {
			t.Errorf("figure %s: %v", f, err)
		}
	}
}

// TestContinuousRowEndToEnd: the embed-and-diffuse row trains, evaluates
// (bound and its three terms, LAMBADA's bound) and samples (ddpm) in the
// same sweep as a discrete row, and the report prints its terms.
func TestContinuousRowEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg := tinySweep(t, dir, `    - name: mdlm
      set: [process.name=absorbing, objective.name=mdlm, sampling.sampler=ancestral-cached]
    - name: vdm
      set: [process.name=gaussian, process.embed_dim=8, objective.name=vdm, sampling.sampler=ddpm]
`)
	runCmd(t, bin, "-cfg", cfg)
	got := map[string]float64{}
	forEvaluations(t, filepath.Join(dir, "results.db"), results.RunFilter{Sweep: "e2e"}, func(r results.Run, evs []results.Evaluation) {
		for _, e := range evs {
			if r.Variant == "vdm" && (len(e.Params) == 0 || e.Task == results.TaskGen) {
				got[e.Task+"/"+e.Metric] = e.Value
			}
		}
	})
	for _, k := range []string{"test/nll", "test/term_prior", "test/term_diffusion", "test/term_recon", "lambada/nll", "gen/entropy"} {
		if v, ok := got[k]; !ok || math.IsNaN(v) || v < 0 {
			t.Errorf("vdm %s = %v (recorded: %v), want a finite non-negative value", k, v, ok)
		}
	}
	if _, ok := got["lambada/accuracy"]; ok {
		t.Errorf("vdm has a LAMBADA accuracy, but it gives no clean-token distribution to fill from")
	}
	rep := runCmd(t, bin, "-cfg", cfg, "-mode", "report")
	for _, want := range []string{"Terms of the bound on the test split", "test/term_recon"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, tail(rep, 3000))
		}
	}
}
