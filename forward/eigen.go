package forward

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// eigenRates decomposes the symmetric rate matrix R = U·diag(λ)·Uᵀ in
// float64 with libtorch's linalg_eigh (LAPACK on CPU, cuSOLVER on CUDA).
// The eigenvalues are clipped at 0: R is negative semi-definite, and a
// rounding error above 0 would grow under e^{σλ}.
func eigenRates(nbr, wt *ts.Tensor) (lam, u *ts.Tensor) {
	r := rates(nbr, wt)
	defer r.MustDrop()
	lam, u = r.MustLinalgEigh("L", false)
	return lam.MustClampMax(ts.FloatScalar(0), true), u
}

// priorKLTable is KL(row x of exp(σR) ‖ uniform) for every token x,
// float64 [V]: one dense V×V product, computed in row blocks.
func priorKLTable(lam, u *ts.Tensor, sigma float64) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	v := u.MustSize()[0]
	decay := s.T(s.T(lam.MustMulScalar(ts.FloatScalar(sigma), false)).MustExp(false))
	ut := s.T(u.MustT(false))
	var parts []*ts.Tensor
	const chunk = 1024
	for lo := int64(0); lo < v; lo += chunk {
		bs := torchx.NewScope()
		rows := bs.T(u.MustNarrow(0, lo, min(chunk, v-lo), false))
		q := bs.T(bs.T(rows.MustMul(decay, false)).MustMatmul(ut, false))
		q = bs.T(q.MustClampMin(ts.FloatScalar(0), false))
		logVq := bs.T(bs.T(q.MustClampMin(ts.FloatScalar(tiny), false)).MustLog(false))
		logVq = bs.T(logVq.MustAddScalar(ts.FloatScalar(math.Log(float64(v))), false))
		parts = append(parts, s.T(bs.T(q.MustMul(logVq, false)).MustSumDimIntlist([]int64{1}, false, gotch.Double, false)))
		bs.Close()
	}
	return ts.MustCat(parts, 0)
}

// cached returns the named float64 tensors stored at path when the file's
// metadata equals meta, and otherwise computes them, stores them and
// returns them. A missing or unreadable entry is recomputed, never fatal;
// only failing to write the cache is an error.
func cached(path string, meta map[string]string, names []string, device gotch.Device, compute func() []*ts.Tensor) ([]*ts.Tensor, error) {
	if out, err := loadCached(path, meta, names, device); err == nil {
		slog.Info("loaded cached embedding-process tensors", "file", path)
		return out, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("ignoring embedding-process cache entry", "file", path, "err", err)
	}
	start := time.Now()
	out := compute()
	slog.Info("computed embedding-process tensors", "file", path, "seconds", time.Since(start).Seconds())
	st := map[string]stTensor{}
	for i, name := range names {
		st[name] = stTensor{Shape: out[i].MustSize(), Data: float64s(out[i])}
	}
	if err := writeSafetensors(path, st, meta); err != nil {
		for _, t := range out {
			t.MustDrop()
		}
		return nil, fmt.Errorf("process.eigen_cache_dir: %w", err)
	}
	return out, nil
}

func loadCached(path string, meta map[string]string, names []string, device gotch.Device) ([]*ts.Tensor, error) {
	var out []*ts.Tensor
	for _, name := range names {
		t, got, err := readSafetensor(path, name)
		if err != nil {
			for _, o := range out {
				o.MustDrop()
			}
			return nil, err
		}
		if !maps.Equal(got, meta) {
			for _, o := range out {
				o.MustDrop()
			}
			return nil, fmt.Errorf("metadata %v, want %v", got, meta)
		}
		out = append(out, ts.MustOfSlice(t.Data).MustView(t.Shape, true).MustTo(device, true))
	}
	return out, nil
}
