package bench

import (
	"fmt"
	"slices"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// The bench's roofline: the machine's own fp32 matrix-multiply rate,
// measured in the same run through the same libtorch, and each row's model
// FLOPs against it (model FLOPs utilisation, MFU).

// gemmSize is n of the n×n·n×n product that measures the rate: large
// enough that libtorch's GEMM runs at its sustained speed.
const gemmSize = 1024

// GEMMRate is fp32 FLOP/s of an n×n by n×n matmul (2n³ FLOPs) with the
// given libtorch threads: the median of 7 timed products after 2 warm-up.
// Call it on a torchx.Lock'ed thread.
func GEMMRate(threads int) float64 {
	torchx.SetThreads(threads)
	a := ts.MustRandn([]int64{gemmSize, gemmSize}, gotch.Float, gotch.CPU)
	b := ts.MustRandn([]int64{gemmSize, gemmSize}, gotch.Float, gotch.CPU)
	defer a.MustDrop()
	defer b.MustDrop()
	var secs []float64
	for i := range 9 {
		start := time.Now()
		c := a.MustMatmul(b, false)
		c.MustDrop()
		if i >= 2 {
			secs = append(secs, time.Since(start).Seconds())
		}
	}
	slices.Sort(secs)
	return 2 * gemmSize * gemmSize * gemmSize / secs[len(secs)/2]
}

// FLOPsPerToken is the model FLOPs of one training token, forward and
// backward: 6 per parameter of every matrix the token passes through (all
// but the embedding table, which is a lookup) plus attention's
// 12·layers·L·width (QKᵀ and the weighted sum of values over L keys, 4·L·d
// forward, times 3 with the backward pass) — the usual count (Kaplan et
// al. 2020, Chinchilla's appendix) for a bidirectional L × L attention.
func FLOPsPerToken(preset string, vocabIn int, params int64, l int) (float64, error) {
	cfg, err := (models.Config{Preset: preset, MaxLen: max(l, 1), Attention: "math"}).Resolve()
	if err != nil {
		return 0, err
	}
	dense := float64(params) - float64(vocabIn*cfg.Width)
	return 6*dense + 12*float64(cfg.Layers*l*cfg.Width), nil
}

// mfu is achieved model FLOP/s over the GEMM rate.
func mfu(tokensPerS, flopsPerToken, gemm float64) float64 {
	if gemm <= 0 {
		return 0
	}
	return tokensPerS * flopsPerToken / gemm
}

func gflop(f float64) string { return fmt.Sprintf("%.3f", f/1e9) }
