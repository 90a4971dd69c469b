package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dlmlab/difflm/config"
	"github.com/dlmlab/difflm/results"
)

// SlurmConfig is `sweep.slurm:`, the resources of each array task of
// `-launcher slurm`; empty keys are left to the cluster's defaults.
type SlurmConfig struct {
	Partition   string   `mapstructure:"partition"`
	Account     string   `mapstructure:"account"`
	Time        string   `mapstructure:"time"` // e.g. "04:00:00"
	CPUsPerTask int      `mapstructure:"cpus_per_task"`
	Mem         string   `mapstructure:"mem"` // e.g. "16G"
	GPUs        int      `mapstructure:"gpus"`
	Extra       []string `mapstructure:"extra"` // more sbatch options, e.g. "--qos=long"
}

// Validate names the offending key.
func (c SlurmConfig) Validate() error {
	switch {
	case c.CPUsPerTask < 0:
		return fmt.Errorf("sweep.slurm.cpus_per_task: %d, want 0 (the cluster's default) or more", c.CPUsPerTask)
	case c.GPUs < 0:
		return fmt.Errorf("sweep.slurm.gpus: %d, want 0 or more", c.GPUs)
	}
	for i, e := range c.Extra {
		if !strings.HasPrefix(e, "--") || strings.ContainsAny(e, "\n\r") {
			return fmt.Errorf("sweep.slurm.extra[%d]: %q is not one sbatch option such as --qos=long", i, e)
		}
	}
	return nil
}

// writeSlurm is `-mode sweep -launcher slurm`: instead of starting the
// sweep's runs it writes, under <out_dir>/slurm/<sweep>/, one sbatch
// script per wave — an array with one task per run not finished yet, each
// task running exactly that run (-sweep-task I, I its index in the plan)
// into its own database beside the run — and submit.sh, which submits the
// waves with afterok dependencies between them. `-mode merge` then folds
// the tasks' databases into the sweep's.
func writeSlurm(cfg *Config, loaded config.Loaded, o options) error {
	if !cfg.Sweep.Enabled() || loaded.Path == "" {
		return usageError{errors.New("-launcher slurm: needs a config file with a sweep: block")}
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if strings.Contains(bin, string(filepath.Separator)+"go-build") {
		return usageError{fmt.Errorf("-launcher slurm: this binary (%s) is go run's temporary build, gone when it exits; build one the tasks can run: go build -o bin/experiments ./experiments", bin)}
	}
	plan, todo, db, err := pending(cfg, "run")
	if err != nil {
		return err
	}
	if len(todo) == 0 {
		fmt.Printf("sweep %s: every run has finished; nothing to submit\n", cfg.Sweep.Name)
		return nil
	}
	cfgPath, err := filepath.Abs(loaded.Path)
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(db), "slurm", filepath.FromSlash(cfg.Sweep.Name))
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	index := map[string]int{}
	for i, r := range plan {
		index[r.Name] = i
	}
	var waves [][]int
	for i, r := range todo {
		if i == 0 || r.Wave != todo[i-1].Wave {
			waves = append(waves, nil)
		}
		waves[len(waves)-1] = append(waves[len(waves)-1], index[r.Name])
	}
	submit := []string{"#!/bin/bash", "# Submits sweep " + cfg.Sweep.Name + ": one array job per wave, each after the one before.",
		"set -euo pipefail", `cd "$(dirname "$0")"`}
	prev := ""
	for w, tasks := range waves {
		name := fmt.Sprintf("wave%d.sbatch", w)
		script := slurmScript(cfg, w, tasks, bin, cfgPath, wd, dir, o.sets)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o644); err != nil {
			return err
		}
		dep := ""
		if prev != "" {
			dep = " --dependency=afterok:$" + prev
		}
		v := fmt.Sprintf("job%d", w)
		submit = append(submit, fmt.Sprintf("%s=$(sbatch --parsable%s %s)", v, dep, name), fmt.Sprintf(`echo "wave %d: job $%s (%d runs)"`, w, v, len(tasks)))
		prev = v
	}
	submit = append(submit, fmt.Sprintf(`echo "when they have finished: %s -cfg %s -mode merge"`, shellQuote(bin), shellQuote(cfgPath)))
	if err := os.WriteFile(filepath.Join(dir, "submit.sh"), []byte(strings.Join(submit, "\n")+"\n"), 0o755); err != nil {
		return err
	}
	fmt.Printf("sweep %s: %d of %d runs to do in %d wave(s); scripts in %s\nsubmit with: %s\n",
		cfg.Sweep.Name, len(todo), len(plan), len(waves), dir, filepath.Join(dir, "submit.sh"))
	return nil
}

// slurmScript is one wave's sbatch script.
func slurmScript(cfg *Config, wave int, tasks []int, bin, cfgPath, wd, dir string, sets []string) string {
	sc := cfg.Sweep.Slurm
	lines := []string{"#!/bin/bash",
		fmt.Sprintf("#SBATCH --job-name=%s-w%d", strings.ReplaceAll(cfg.Sweep.Name, "/", "-"), wave),
		"#SBATCH --array=" + arraySpec(tasks),
		"#SBATCH --output=" + filepath.Join(dir, "logs", "%A_%a.log"),
		"#SBATCH --ntasks=1"}
	add := func(flag, v string) {
		if v != "" && v != "0" {
			lines = append(lines, "#SBATCH "+flag+"="+v)
		}
	}
	add("--partition", sc.Partition)
	add("--account", sc.Account)
	add("--time", sc.Time)
	add("--cpus-per-task", strconv.Itoa(sc.CPUsPerTask))
	add("--mem", sc.Mem)
	if sc.GPUs > 0 {
		add("--gres", fmt.Sprintf("gpu:%d", sc.GPUs))
	}
	for _, e := range sc.Extra {
		lines = append(lines, "#SBATCH "+e)
	}
	lines = append(lines, "# One run of the sweep per array task: index I of the plan, its own database beside the run.",
		"set -euo pipefail", "cd "+shellQuote(wd))
	if d := os.Getenv("DATA_DIR"); d != "" {
		lines = append(lines, "export DATA_DIR="+shellQuote(d))
	}
	cmd := []string{"exec", shellQuote(bin), "-cfg", shellQuote(cfgPath), "-sweep-task", `"$SLURM_ARRAY_TASK_ID"`}
	for _, s := range sets {
		cmd = append(cmd, "-set", shellQuote(s))
	}
	lines = append(lines, strings.Join(cmd, " "))
	return strings.Join(lines, "\n") + "\n"
}

// arraySpec writes task indices as sbatch does: "0-3,7,9-10".
func arraySpec(idx []int) string {
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(idx[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// taskDB is where sweep task r keeps its results: beside the run.
func taskDB(cfg *Config, r PlannedRun) string {
	return filepath.Join(cfg.OutDir, filepath.FromSlash(r.Name), "results.db")
}

// sweepTask is -sweep-task I: run exactly the plan's run I, as the local
// sweep would start it, into its own database (taskDB).
func sweepTask(ctx context.Context, cfg *Config, o options) error {
	if !cfg.Sweep.Enabled() {
		return usageError{errors.New("-sweep-task: the config has no sweep: block")}
	}
	plan := cfg.Sweep.Plan()
	if o.sweepTask >= len(plan) {
		return usageError{fmt.Errorf("-sweep-task %d: the sweep plans %d runs (0…%d)", o.sweepTask, len(plan), len(plan)-1)}
	}
	r := plan[o.sweepTask]
	child := o
	child.sweepTask, child.mode = -1, "run"
	child.runName, child.variant, child.sweep = r.Name, r.Variant, cfg.Sweep.Name
	child.sets = append(append(setFlags{}, r.Sets...), o.sets...)
	child.db = taskDB(cfg, r)
	if err := os.MkdirAll(filepath.Dir(child.db), 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "sweep task %d: run %s into %s\n", o.sweepTask, r.Name, child.db)
	return run(ctx, child)
}

// merge is -mode merge: fold every planned run's task database (taskDB)
// into the sweep's, transactionally and idempotently (results.Merge).
func merge(cfg *Config) error {
	if !cfg.Sweep.Enabled() {
		return usageError{errors.New("-mode merge: the config has no sweep: block")}
	}
	store, err := results.Open(dbPath(cfg))
	if err != nil {
		return err
	}
	defer store.Close()
	var total results.MergeStats
	missing := 0
	for _, r := range cfg.Sweep.Plan() {
		p := taskDB(cfg, r)
		if _, err := os.Stat(p); err != nil {
			missing++
			continue
		}
		st, err := store.Merge(p)
		if err != nil {
			return err
		}
		total.Added += st.Added
		total.Same += st.Same
		total.Skipped += st.Skipped
		total.Replaced += st.Replaced
	}
	fmt.Printf("merge into %s: %d runs added (%d replacing unfinished ones), %d already there, %d unfinished left out, %d planned runs have no task database yet\n",
		dbPath(cfg), total.Added, total.Replaced, total.Same, total.Skipped, missing)
	return nil
}
