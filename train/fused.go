package train

// #cgo CFLAGS: -O3
// #cgo LDFLAGS: -lm
// // No fused multiply-add (aarch64 has it): each op rounds as ATen's do.
// #pragma GCC optimize("fp-contract=off")
// #include <math.h>
// #include <stddef.h>
// #ifdef __SSE2__
// #include <emmintrin.h>
// #endif
//
// // ATen's lerp(x, y, w) with a scalar weight is x + w·(y − x) for w < ½
// // and y + (w − 1)·(y − x) otherwise; here base = x·a + y·b with (a, b)
// // = (1, 0) or (0, 1), exact, so that one branch-free form rounds as each.
// typedef struct { float coeff, a, b; } lerp_w;
//
// static inline float lerp1(float x, float y, lerp_w w) {
//	return (x * w.a + y * w.b) + w.coeff * (y - x);
// }
//
// #ifdef __SSE2__
// typedef struct { __m128 coeff, a, b; } lerp_w4;
// static inline lerp_w4 lerp_w4_of(lerp_w w) {
//	return (lerp_w4){_mm_set1_ps(w.coeff), _mm_set1_ps(w.a), _mm_set1_ps(w.b)};
// }
// static inline __m128 lerp4(__m128 x, __m128 y, lerp_w4 w) {
//	__m128 base = _mm_add_ps(_mm_mul_ps(x, w.a), _mm_mul_ps(y, w.b));
//	return _mm_add_ps(base, _mm_mul_ps(w.coeff, _mm_sub_ps(y, x)));
// }
// #endif
//
// // One AdamW step and EMA update over n elements, the arithmetic of
// // adamW.update and ema.update in their order, one element at a time
// // (four at a time with SSE2; gcc does not vectorise sqrtf without
// // -fno-math-errno, which cgo does not allow): p·decay (1 without weight
// // decay: exact), the moments, p + m/(√v·c + d) unless lr0 (lr = 0), the
// // EMA when e is not NULL.
// static void adamw_ema_f32(float *p, const float *g, float *m, float *v, float *e, size_t n,
//		float decay, lerp_w w1, lerp_w w2, int lr0, float c, float d, lerp_w we) {
//	size_t i = 0;
// #ifdef __SSE2__
//	const __m128 decay4 = _mm_set1_ps(decay), c4 = _mm_set1_ps(c), d4 = _mm_set1_ps(d);
//	const lerp_w4 w14 = lerp_w4_of(w1), w24 = lerp_w4_of(w2), we4 = lerp_w4_of(we);
//	for (; i + 4 <= n; i += 4) {
//		__m128 pi = _mm_mul_ps(_mm_loadu_ps(p + i), decay4), gi = _mm_loadu_ps(g + i);
//		__m128 mi = lerp4(_mm_loadu_ps(m + i), gi, w14);
//		__m128 vi = lerp4(_mm_loadu_ps(v + i), _mm_mul_ps(gi, gi), w24);
//		_mm_storeu_ps(m + i, mi);
//		_mm_storeu_ps(v + i, vi);
//		if (!lr0) pi = _mm_add_ps(pi, _mm_div_ps(mi, _mm_add_ps(_mm_mul_ps(_mm_sqrt_ps(vi), c4), d4)));
//		_mm_storeu_ps(p + i, pi);
//		if (e) _mm_storeu_ps(e + i, lerp4(_mm_loadu_ps(e + i), pi, we4));
//	}
// #endif
//	for (; i < n; i++) {
//		float pi = p[i] * decay, gi = g[i];
//		float mi = lerp1(m[i], gi, w1);
//		float vi = lerp1(v[i], gi * gi, w2);
//		m[i] = mi;
//		v[i] = vi;
//		if (!lr0) pi = pi + mi / (sqrtf(vi) * c + d);
//		p[i] = pi;
//		if (e) e[i] = lerp1(e[i], pi, we);
//	}
// }
import "C"

import (
	"math"
	"sync"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// fusable reports whether the fused CPU kernel can update t in place: a
// contiguous float32 tensor in host memory. Elsewhere (CUDA) the optimizer
// runs as tensor ops, which a GPU fuses poorly but runs at its bandwidth.
// (gotch's Device for a tensor on the CPU is not == gotch.CPU: Value 1, not −1.)
func fusable(t *ts.Tensor) bool {
	return !t.MustDevice().IsCuda() && t.DType() == gotch.Float && t.MustIsContiguous()
}

// fusedStep is adamW.update followed by ema.update (when e is not nil) in
// one pass over the flat buffers, split across o.threads goroutines.
//
// Why: as tensor ops the step is eight passes over N elements and the
// EMA's lerp a ninth, each streaming two to four N-element buffers; here
// every element is read and written once, four at a time. On small-cpu
// (3.2M parameters, 2 threads) the ops took 16 ms of a 187 ms training
// step, this 4.3 (BenchmarkAdamWStep prints both). The maths is the ops'
// own, operation by operation in float32 (no fused multiply-add), so the
// result equals theirs to one rounding (TestFusedStepEqualsOps: 1e-7).
func (o *adamW) fusedStep(e *ema, lr, bc1, bc2 float64) {
	n := int(o.f.param.Numel())
	// The data pointers are read here, on the caller's locked thread (gotch
	// reads libtorch's error state after each call); the goroutines only
	// run C on the memory behind them.
	bufs := []*ts.Tensor{o.f.param, o.f.grad, o.mBuf, o.vBuf}
	if e != nil {
		bufs = append(bufs, e.buf)
	}
	base := make([]unsafe.Pointer, len(bufs))
	for i, b := range bufs {
		base[i] = b.MustDataPtr()
	}
	decay := 1 - lr*o.weightDecay // exactly 1 without weight decay
	c, d := 1.0, 1.0 // unused at lr = 0
	if lr != 0 {
		k := -bc1 / lr
		c, d = k/math.Sqrt(bc2), k*o.eps
	}
	w1, w2, we := lerpWeight(1-o.beta1), lerpWeight(1-o.beta2), lerpWeight(1-emaDecay(e))
	run := func(lo, hi int) {
		at := make([]*C.float, 5) // at[4] stays NULL without an EMA
		for i, b := range base {
			at[i] = (*C.float)(unsafe.Add(b, 4*lo))
		}
		C.adamw_ema_f32(at[0], at[1], at[2], at[3], at[4], C.size_t(hi-lo),
			C.float(decay), w1, w2, cbool(lr == 0), C.float(c), C.float(d), we)
	}
	threads := max(1, min(o.threads, n/(1<<16))) // a goroutine per 64k elements at most
	per := (n + threads - 1) / threads
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			run(lo, hi)
		}(lo, min(lo+per, n))
	}
	wg.Wait()
}

// lerpWeight is the kernel's form of a lerp weight w (see lerp_w), in
// float32 as ATen converts it.
func lerpWeight(w float64) C.lerp_w {
	w32 := float32(w)
	if w32 < 0.5 {
		return C.lerp_w{coeff: C.float(w32), a: 1, b: 0}
	}
	return C.lerp_w{coeff: C.float(w32 - 1), a: 0, b: 1}
}

func emaDecay(e *ema) float64 {
	if e == nil {
		return 0
	}
	return e.decay
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
