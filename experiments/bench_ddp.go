package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	gobench "github.com/dlmlab/difflm/bench"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/torchx"
)

// ddpBenchSteps is the length of each data-parallel bench run; the first
// logging window (start-up, first allocations) is left out of the median.
const ddpBenchSteps, ddpBenchWindow = 60, 10

// benchDDP is the data-parallel row of -mode bench: the config's training
// (its model, objective, batch) for a few steps as one rank with all the
// usable CPUs' threads, then as that many ranks of one thread each
// (-nproc), each a child process of this binary; tokens/s is the median
// of the logged windows (global tokens of the job per second).
func benchDDP(ctx context.Context, loadedPath string, sets []string, w io.Writer) error {
	cpus := torchx.UsableCPUs()
	if cpus < 2 {
		fmt.Fprintf(w, "# data parallel: skipped, %d usable CPU\n", cpus)
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "difflm-bench-ddp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	type row struct {
		label string
		args  []string
		tps   float64
	}
	rows := []row{
		{label: fmt.Sprintf("1 rank × %d threads", cpus), args: []string{"-set", fmt.Sprintf("threads=%d", cpus)}},
		{label: fmt.Sprintf("%d ranks × 1 thread", cpus), args: []string{"-set", "threads=auto", "-nproc", strconv.Itoa(cpus)}},
	}
	fmt.Fprintf(w, "# data parallel (torch c10d, Gloo over loopback): the config's training, %d steps, median tokens/s of %d-step windows after the first; load average before: %s\n",
		ddpBenchSteps, ddpBenchWindow, gobench.LoadAverage())
	for i := range rows {
		r := &rows[i]
		name := fmt.Sprintf("bench-ddp-%d", i)
		args := []string{"-mode", "train", "-set", "name=" + name, "-set", "out_dir=" + dir,
			"-set", fmt.Sprintf("train.steps=%d", ddpBenchSteps), "-set", "train.warmup=1", "-set", "train.eval_every=0",
			"-set", fmt.Sprintf("train.log_every=%d", ddpBenchWindow), "-set", fmt.Sprintf("train.ckpt_every=%d", ddpBenchSteps)}
		if loadedPath != "" {
			args = append([]string{"-cfg", loadedPath}, args...)
		}
		for _, s := range sets {
			args = append(args, "-set", s)
		}
		args = append(args, r.args...)
		cmd := exec.CommandContext(ctx, self, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("bench data parallel, %s: %w\n%s", r.label, err, tailLines(string(out), 20))
		}
		if r.tps, err = medianTokensPerS(filepath.Join(dir, "results.db"), name); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "| layout | tokens/s | vs 1 rank |")
	fmt.Fprintln(w, "|---|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %.0f | %.2f× |\n", r.label, r.tps, r.tps/rows[0].tps)
	}
	fmt.Fprintf(w, "# load average after: %s\n", gobench.LoadAverage())
	return nil
}

// medianTokensPerS is the median tokens_per_s a run logged, without its
// first window.
func medianTokensPerS(db, name string) (float64, error) {
	store, err := results.Open(db)
	if err != nil {
		return 0, err
	}
	defer store.Close()
	runs, err := store.Runs(results.RunFilter{Names: []string{name}})
	if err != nil || len(runs) != 1 {
		return 0, fmt.Errorf("bench data parallel: run %s not recorded (%v)", name, err)
	}
	pts, err := store.Metrics(runs[0].ID, "tokens_per_s")
	if err != nil {
		return 0, err
	}
	var v []float64
	for _, p := range pts {
		if p.Split == results.SplitTrain && p.Step > ddpBenchWindow {
			v = append(v, p.Value)
		}
	}
	if len(v) == 0 {
		return 0, fmt.Errorf("bench data parallel: run %s logged no tokens/s", name)
	}
	slices.Sort(v)
	return v[len(v)/2], nil
}

func tailLines(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			if lines++; lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
