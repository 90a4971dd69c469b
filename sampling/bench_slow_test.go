//go:build slow

package sampling

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/torchx"
)

// TestBenchTable prints the full sampling-speed table (one to two hours on
// two cores): go test -tags slow -run BenchTable -timeout 4h ./sampling.
// SAMPLING_BENCH_SAMPLERS (comma-separated names), SAMPLING_BENCH_LENGTHS
// and SAMPLING_BENCH_STEPS narrow it; SAMPLING_BENCH_BATCH sets the batch.
func TestBenchTable(t *testing.T) {
	torchx.Lock()
	cfg := DefaultBenchConfig()
	if v := os.Getenv("SAMPLING_BENCH_SAMPLERS"); v != "" {
		cfg.Samplers = strings.Split(v, ",")
	}
	if v := os.Getenv("SAMPLING_BENCH_LENGTHS"); v != "" {
		cfg.Lengths = ints(t, v)
	}
	if v := os.Getenv("SAMPLING_BENCH_STEPS"); v != "" {
		cfg.Steps = ints(t, v)
	}
	if v := os.Getenv("SAMPLING_BENCH_BATCH"); v != "" {
		cfg.Batch = ints(t, v)[0]
	}
	t.Logf("libtorch threads: %d, batch %d", torchx.Threads(), cfg.Batch)
	if _, err := BenchTable(context.Background(), cfg, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

func ints(t *testing.T, list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%q: %v", list, err)
		}
		out = append(out, n)
	}
	return out
}
