package sampling

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dlmlab/difflm/torchx"
)

// BenchmarkSamplers times every sampler on random tiny networks: 4
// sequences of 32 tokens in 16 steps. The table of the report (small-cpu,
// L = 128 and 256) is BenchTable, run by TestBenchTable under -tags slow.
func BenchmarkSamplers(b *testing.B) {
	torchx.Lock()
	nets := newTinyNets(b, 32)
	cfg := DefaultConfig()
	cfg.BlockLen, cfg.Window = 8, 32
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			proc, net := nets.forSampler(name)
			s, err := New(name, cfg, proc, net)
			if err != nil {
				b.Fatal(err)
			}
			calls := 0
			for b.Loop() {
				res, err := s.Generate(context.Background(), Request{N: 4, Len: 32, Steps: 16, Temperature: 1, TopP: 1})
				if err != nil {
					b.Fatal(err)
				}
				calls = res.ModelCalls
			}
			b.ReportMetric(float64(4*32*b.N)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(calls), "calls/op")
		})
	}
}

// TestBenchTableSmall runs the table on the tiny preset and checks the
// rows whose model calls are fixed: one per step, one per token for ar,
// and T + 1 for SEDD's samplers (T predictor steps and the denoising step,
// as SEDD counts them).
func TestBenchTableSmall(t *testing.T) {
	torchx.Lock()
	cfg := BenchConfig{Preset: "tiny", Vocab: tinyV, Batch: 2, Lengths: []int{16}, Steps: []int{4, 0}, Samplers: Names(), BlockLen: 8, Seed: 1,
		FullHead: []string{"ancestral-cached"}}
	var out bytes.Buffer
	rows, err := BenchTable(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	fixed := map[string]int{"ancestral": 0, "sedd-analytic": 1, "sedd-euler": 1, "remdm": 0, "ar": 0, "ar-nocache": 0}
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.Sampler]++
		extra, ok := fixed[r.Sampler]
		if r.Sampler == "block-cached" {
			extra = r.L / 8 // caching each decoded block of 8 is one call
		}
		if ok && r.ModelCalls != r.T+extra {
			t.Errorf("%s at T=%d: %d model calls, want %d", r.Sampler, r.T, r.ModelCalls, r.T+extra)
		}
		if r.ModelCalls > r.T+extra || !(r.TokensPerSec > 0) {
			t.Errorf("row %+v", r)
		}
	}
	// The full-head rows repeat ancestral-cached's with the same calls:
	// the same sampler, only the output layer runs on every position.
	calls := map[string]int{}
	for _, r := range rows {
		if r.Sampler == "ancestral-cached" {
			calls[fmt.Sprint(r.T)] = r.ModelCalls
		}
	}
	for _, r := range rows {
		if r.Sampler == "ancestral-cached/full-head" && r.ModelCalls != calls[fmt.Sprint(r.T)] {
			t.Errorf("full head at T=%d: %d calls, the masked head %d", r.T, r.ModelCalls, calls[fmt.Sprint(r.T)])
		}
	}
	if seen["ancestral-cached/full-head"] != 2 {
		t.Errorf("%d full-head rows, want 2 (T = 4 and 16)", seen["ancestral-cached/full-head"])
	}
	for _, name := range Names() {
		want := 2 // T = 4 and T = L = 16
		if strings.HasPrefix(name, "ar") {
			want = 1
		}
		if seen[name] != want {
			t.Errorf("%s: %d rows, want %d", name, seen[name], want)
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines != 2+len(rows) {
		t.Errorf("table of %d lines for %d rows:\n%s", lines, len(rows), out.String())
	}
}
