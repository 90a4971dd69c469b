package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestArraySpec(t *testing.T) {
	for _, c := range []struct {
		in   []int
		want string
	}{{[]int{0}, "0"}, {[]int{0, 1, 2, 3}, "0-3"}, {[]int{0, 1, 2, 3, 7, 9, 10}, "0-3,7,9-10"}, {[]int{4, 6}, "4,6"}} {
		if got := arraySpec(c.in); got != c.want {
			t.Errorf("arraySpec(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

const slurmSection = `  slurm:
    partition: cpu
    time: "00:10:00"
    cpus_per_task: 2
    mem: 4G
    extra: [--qos=test]
`

// dbRows is what a database says about its runs, without what may differ
// between two executions of the same runs: ids, times, folders, speed,
// and float noise below 1e-12 (the standard error of equal values, 0 in
// one process and 3e-16 in another).
func dbRows(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, q := range []string{
		"SELECT r.name, r.sweep, r.variant, r.seed, r.status FROM runs r",
		"SELECT r.name, m.step, m.split, m.name, printf('%.10g', round(m.value, 12)) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.name NOT IN ('tokens_per_s')",
		"SELECT r.name, e.task, e.metric, e.params, printf('%.10g', round(e.value, 12)), printf('%.10g', round(e.stderr, 12)), e.n FROM evaluations e JOIN runs r ON r.id = e.run_id WHERE e.metric NOT LIKE '%per_s%' AND e.metric NOT LIKE '%latency%'",
		"SELECT r.name, s.sampler, s.steps, s.idx, s.text, s.model_calls FROM samples s JOIN runs r ON r.id = s.run_id",
		"SELECT r.name, b.task, b.fingerprint, b.k, b.nats FROM sequence_bounds b JOIN runs r ON r.id = b.run_id",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(vals...))
		}
		rows.Close()
	}
	slices.Sort(out)
	return out
}

// TestSlurmSweepEndToEnd: -launcher slurm writes the scripts of the golden
// files (one array per wave, afterok between waves, the config's
// resources); running their tasks as plain processes with
// SLURM_ARRAY_TASK_ID set, then -mode merge (twice: idempotent), gives
// the database rows of the local sweep.
func TestSlurmSweepEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	t.Setenv("DATA_DIR", dataDir(t)) // the scripts export it: the same golden files with and without make
	root := t.TempDir()
	local, cluster := filepath.Join(root, "local"), filepath.Join(root, "cluster")
	for _, d := range []string{local, cluster} {
		os.MkdirAll(d, 0o755)
	}
	cfgLocal := tinySweep(t, local, twoVariants)
	runCmd(t, bin, "-cfg", cfgLocal)
	cfg := tinySweep(t, cluster, twoVariants)
	text, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(string(text)+slurmSection), 0o644)

	out := runCmd(t, bin, "-cfg", cfg, "-mode", "sweep", "-launcher", "slurm")
	dir := filepath.Join(cluster, "slurm", "e2e")
	if !strings.Contains(out, "2 of 2 runs to do in 2 wave(s)") {
		t.Errorf("launcher output: %s", out)
	}
	wd, _ := os.Getwd()
	for _, name := range []string{"wave0.sbatch", "wave1.sbatch", "submit.sh"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.NewReplacer(cluster, "$OUT", bin, "$BIN", wd, "$WD", dataDir(t), "$DATA").Replace(string(b))
		golden := filepath.Join("testdata", "slurm", name)
		if *updateGolden {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			os.WriteFile(golden, []byte(got), 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (go test ./experiments -run Slurm -update writes it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs from %s:\n%s", name, golden, got)
		}
	}
	arrayRe := regexp.MustCompile(`(?m)^#SBATCH --array=(\S+)$`)
	for _, name := range []string{"wave0.sbatch", "wave1.sbatch"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		m := arrayRe.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s has no --array", name)
		}
		for _, part := range strings.Split(string(m[1]), ",") {
			lo, hi, _ := strings.Cut(part, "-")
			a, _ := strconv.Atoi(lo)
			z := a
			if hi != "" {
				z, _ = strconv.Atoi(hi)
			}
			for i := a; i <= z; i++ {
				cmd := exec.Command("bash", filepath.Join(dir, name))
				cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID="+strconv.Itoa(i))
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s task %d: %v\n%s", name, i, err, tail(string(b), 2000))
				}
			}
		}
	}
	for i := 0; i < 2; i++ {
		out = runCmd(t, bin, "-cfg", cfg, "-mode", "merge")
	}
	if !strings.Contains(out, "0 runs added (0 replacing unfinished ones), 2 already there") {
		t.Errorf("second merge: %s", out)
	}
	want, got := dbRows(t, filepath.Join(local, "results.db")), dbRows(t, filepath.Join(cluster, "results.db"))
	if len(want) < 10 {
		t.Fatalf("the local sweep's database has %d rows", len(want))
	}
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("first difference at row %d:\n merged %s\n local  %s", i, g, w)
				break
			}
		}
		t.Errorf("merged database: %d rows, local sweep: %d", len(got), len(want))
	}
}
