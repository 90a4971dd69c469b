package forward

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

var testSched = LogLinear{Eps: 1e-3}

// Every marginal view (Row, Column, Entries, Propagate) equals the dense
// exp(σR) of the rate matrix written from the process's definition.
func TestMarginalsMatchDenseExpm(t *testing.T) {
	torchx.Lock()
	for _, tp := range toyProcesses(t, testSched) {
		n := tp.p.NumStates()
		v := tp.p.Vocab()
		for _, sigma := range []float64{0, 1e-7, 0.3, 2.5, 30} {
			t.Run(fmt.Sprintf("%s/sigma=%g", tp.p.Name(), sigma), func(t *testing.T) {
				torchx.Lock() // a subtest runs on its own goroutine
				want := expm(scaled(tp.r, sigma))
				x := states(n)
				defer x.MustDrop()
				sg := []float64{sigma}
				row := tp.p.Row(x, sg, gotch.Double)
				closeMatrix(t, "Row", matrix(row), want, 1e-12)
				for i, r := range matrix(row) {
					sum := 0.0
					for _, q := range r {
						sum += q
					}
					if math.Abs(sum-1) > 1e-12 {
						t.Fatalf("row %d sums to %.15g", i, sum)
					}
				}
				col := tp.p.Column(x, sg, gotch.Double)
				got := matrix(col)
				for y := range n {
					for xx := range n {
						if d := math.Abs(got[xx][y] - want[y][xx]); d > 1e-12 {
							t.Fatalf("Column(%d)[%d] = %g, want exp(σR)[%d][%d] = %g", xx, y, got[xx][y], y, xx, want[y][xx])
						}
					}
				}
				// Entries at a few (x0, y) pairs, K = 3 per position.
				x0 := ts.MustOfSlice([]int64{0, 1, int64(v - 1)}).MustView([]int64{1, 3}, true)
				ys := ts.MustOfSlice([]int64{0, 1, int64(n - 1), 2, 1, 0, int64(n - 1), 0, 1}).MustView([]int64{1, 3, 3}, true)
				ent := matrix(tp.p.Entries(x0, ys, sg, gotch.Double))
				x0s, yss := x0.Int64Values(), ys.Int64Values()
				for i := range 3 {
					for j := range 3 {
						if w := want[x0s[i]][yss[3*i+j]]; math.Abs(ent[i][j]-w) > 1e-12 {
							t.Fatalf("Entries(%d, %d) = %g, want %g", x0s[i], yss[3*i+j], ent[i][j], w)
						}
					}
				}
				// Propagate a distribution over real tokens.
				w := make([]float64, v)
				for i := range w {
					w[i] = float64(i+1) / float64(v*(v+1)/2)
				}
				wt := ts.MustOfSlice(w).MustView([]int64{1, 1, int64(v)}, true)
				prop := matrix(tp.p.Propagate(wt, sg))[0]
				for y := range n {
					exp := 0.0
					for i := range v {
						exp += w[i] * want[i][y]
					}
					if math.Abs(prop[y]-exp) > 1e-12 {
						t.Fatalf("Propagate[%d] = %g, want %g", y, prop[y], exp)
					}
				}
			})
		}
	}
}

// Q̄ at t_i equals the product of the one-step matrices Q_1…Q_i of a T-step
// grid on the schedule.
func TestCumulativeIsProductOfSteps(t *testing.T) {
	torchx.Lock()
	const steps = 6
	for _, tp := range toyProcesses(t, testSched) {
		x := states(tp.p.NumStates())
		prod := eye(tp.p.NumStates())
		prev := 0.0
		for i := 1; i <= steps; i++ {
			sigma := testSched.Sigma(float64(i) / steps)
			step := matrix(tp.p.Row(x, []float64{sigma - prev}, gotch.Double))
			prod = matmul(prod, step)
			cum := matrix(tp.p.Row(x, []float64{sigma}, gotch.Double))
			closeMatrix(t, fmt.Sprintf("%s Q̄_%d", tp.p.Name(), i), cum, prod, 1e-12)
			prev = sigma
		}
		x.MustDrop()
	}
}

// The forward rates JumpsInto reports generate the marginals: the matrix
// R[y][x] assembled from them reproduces Row through exp(σR).
func TestRatesGenerateMarginals(t *testing.T) {
	torchx.Lock()
	for _, tp := range toyProcesses(t, testSched) {
		n := tp.p.NumStates()
		x := states(n)
		from, rate := tp.p.JumpsInto(x, gotch.Double)
		rates := matrix(rate)
		r := make([][]float64, n)
		for y := range r {
			r[y] = make([]float64, n)
		}
		var ids []int64
		if from != nil {
			ids = from.Int64Values()
		}
		for xx := range n {
			for slot, w := range rates[xx] {
				y := slot
				if from != nil {
					y = int(ids[xx*len(rates[xx])+slot])
				}
				if y == xx && w != 0 {
					t.Fatalf("%s: state %d listed as jumping into itself at rate %g", tp.p.Name(), xx, w)
				}
				r[y][xx] += w
				r[y][y] -= w
			}
		}
		closeMatrix(t, tp.p.Name()+" rates", r, tp.r, 1e-15)
		x.MustDrop()
	}
}

// Sample draws from Row: frequencies over 200k positions agree with the
// marginal within 5 standard errors.
func TestSampleMatchesMarginal(t *testing.T) {
	torchx.Lock()
	torchx.Seed(7)
	const l = 100000
	for _, tp := range toyProcesses(t, testSched) {
		n := tp.p.NumStates()
		sigmas := []float64{0.2, 3}
		x0 := ts.MustFull([]int64{2, l}, ts.IntScalar(1), gotch.Int64, gotch.CPU)
		xt := tp.p.Sample(x0, sigmas).Int64Values()
		for b, sigma := range sigmas {
			want := expm(scaled(tp.r, sigma))[1]
			counts := make([]float64, n)
			for _, s := range xt[b*l : (b+1)*l] {
				counts[s]++
			}
			for y := range n {
				got := counts[y] / l
				se := math.Sqrt(want[y]*(1-want[y])/l) + 1e-9
				if math.Abs(got-want[y]) > 5*se {
					t.Errorf("%s σ=%g: frequency of %d = %.5f, want %.5f ± %.5f", tp.p.Name(), sigma, y, got, want[y], se)
				}
			}
		}
		x0.MustDrop()
	}
}

// Posterior is Bayes' rule on the dense matrices:
// q(x_s|x_t,x0) = Q̄_s[x0,x_s]·Q_{s→t}[x_s,x_t] / Q̄_t[x0,x_t].
func TestPosteriorIsBayes(t *testing.T) {
	torchx.Lock()
	const sigmaS, sigmaT = 0.4, 1.1
	for _, tp := range toyProcesses(t, testSched) {
		n, v := tp.p.NumStates(), tp.p.Vocab()
		qs, qst, qt := expm(scaled(tp.r, sigmaS)), expm(scaled(tp.r, sigmaT-sigmaS)), expm(scaled(tp.r, sigmaT))
		for x0 := range v {
			x0s := ts.MustFull([]int64{1, int64(n)}, ts.IntScalar(int64(x0)), gotch.Int64, gotch.CPU)
			xt := states(n)
			post := matrix(Posterior(tp.p, x0s, xt, []float64{sigmaS}, []float64{sigmaT}, gotch.Double))
			for xtv := range n {
				if qt[x0][xtv] == 0 {
					continue
				}
				for xs := range n {
					want := qs[x0][xs] * qst[xs][xtv] / qt[x0][xtv]
					if math.Abs(post[xtv][xs]-want) > 1e-12 {
						t.Fatalf("%s: q(x_s=%d|x_t=%d,x0=%d) = %g, want %g", tp.p.Name(), xs, xtv, x0, post[xtv][xs], want)
					}
				}
			}
			// σ_s = 0 is the point mass on x0.
			at0 := matrix(Posterior(tp.p, x0s, xt, []float64{0}, []float64{sigmaT}, gotch.Double))
			for xtv := range n {
				if qt[x0][xtv] > 0 && math.Abs(at0[xtv][x0]-1) > 1e-12 {
					t.Fatalf("%s: posterior at σ_s=0 puts %g on x0", tp.p.Name(), at0[xtv][x0])
				}
			}
			x0s.MustDrop()
			xt.MustDrop()
		}
	}
}

// The mixture form is the p̃-weighted mixture of the true posteriors; the
// proportional form equals it for absorbing, and in general equals the
// mixture of p̃(v)·Q̄_t[v,x_t] renormalised, which is why its optimal p̃ is
// the marginal divided by Q̄_t[v,x_t].
func TestModelPosteriorForms(t *testing.T) {
	torchx.Lock()
	const sigmaS, sigmaT = 0.4, 1.1
	for _, tp := range toyProcesses(t, testSched) {
		n, v := tp.p.NumStates(), tp.p.Vocab()
		qt := expm(scaled(tp.r, sigmaT))
		pt := make([]float64, v)
		for i := range pt {
			pt[i] = float64(2*i+1) / float64(v*v)
		}
		for xtv := range n {
			xt := ts.MustFull([]int64{1, 1}, ts.IntScalar(int64(xtv)), gotch.Int64, gotch.CPU)
			probs := ts.MustOfSlice(pt).MustView([]int64{1, 1, int64(v)}, true)
			mix := matrix(ModelPosterior(tp.p, probs, xt, []float64{sigmaS}, []float64{sigmaT}, Mixture))[0]
			// Reference mixture over the clean tokens that can reach x_t.
			want := make([]float64, n)
			total := 0.0
			for x0 := range v {
				if qt[x0][xtv] == 0 {
					continue
				}
				x0s := ts.MustFull([]int64{1, 1}, ts.IntScalar(int64(x0)), gotch.Int64, gotch.CPU)
				post := matrix(Posterior(tp.p, x0s, xt, []float64{sigmaS}, []float64{sigmaT}, gotch.Double))[0]
				for xs := range n {
					want[xs] += pt[x0] * post[xs]
				}
				total += pt[x0]
			}
			for xs := range want {
				want[xs] /= total
			}
			closeMatrix(t, tp.p.Name()+" mixture", [][]float64{mix}, [][]float64{want}, 1e-12)
			// Proportional with p̃'(v) ∝ p̃(v)/Q̄_t[v,x_t] gives the mixture.
			adj := make([]float64, v)
			for x0 := range v {
				if qt[x0][xtv] > 0 {
					adj[x0] = pt[x0] / qt[x0][xtv]
				}
			}
			ap := ts.MustOfSlice(adj).MustView([]int64{1, 1, int64(v)}, true)
			prop := matrix(ModelPosterior(tp.p, ap, xt, []float64{sigmaS}, []float64{sigmaT}, Proportional))[0]
			closeMatrix(t, tp.p.Name()+" proportional(p̃/Q̄)", [][]float64{prop}, [][]float64{want}, 1e-12)
			if tp.p.Name() == "absorbing" {
				plain := matrix(ModelPosterior(tp.p, probs, xt, []float64{sigmaS}, []float64{sigmaT}, Proportional))[0]
				closeMatrix(t, "absorbing proportional", [][]float64{plain}, [][]float64{mix}, 1e-12)
			}
		}
	}
}

// TestFirstStepIsTheDenoiser: at the last reverse step (σ_s = 0) the
// proportional form is p̃ itself (D3PM's p_θ(x0|x_1)), for every x_1,
// while a row of the same batch at σ_s > 0 keeps Q_{s→t}[·,x_t] ⊙ p̃·Q̄_s.
func TestFirstStepIsTheDenoiser(t *testing.T) {
	torchx.Lock()
	for _, tp := range toyProcesses(t, testSched) {
		n, v := tp.p.NumStates(), tp.p.Vocab()
		pt := make([]float64, 2*v)
		for i := range v {
			pt[i] = float64(2*i+1) / float64(v*v)
			pt[v+i] = pt[i]
		}
		for xtv := range n {
			xt := ts.MustFull([]int64{2, 1}, ts.IntScalar(int64(xtv)), gotch.Int64, gotch.CPU)
			probs := ts.MustOfSlice(pt).MustView([]int64{2, 1, int64(v)}, true)
			got := matrix(ModelPosterior(tp.p, probs, xt, []float64{0, 0.4}, []float64{0.3, 1.1}, Proportional).MustView([]int64{2, int64(n)}, true))
			want := make([]float64, n)
			copy(want, pt[:v])
			closeMatrix(t, tp.p.Name()+" first step", got[:1], [][]float64{want}, 1e-12)
			// The other row: normalize(Q_{0.4→1.1}[·,x_t] ⊙ p̃·Q̄_0.4).
			step, cum := expm(scaled(tp.r, 0.7)), expm(scaled(tp.r, 0.4))
			ref := make([]float64, n)
			sum := 0.0
			for xs := range n {
				for x0 := range v {
					ref[xs] += pt[x0] * cum[x0][xs]
				}
				ref[xs] *= step[xs][xtv]
				sum += ref[xs]
			}
			for i := range ref {
				ref[i] /= sum
			}
			closeMatrix(t, tp.p.Name()+" later step", got[1:], [][]float64{ref}, 1e-12)
		}
	}
}

// PriorKL is KL(exp(σ(1)R)[x0] ‖ Prior()), and Prior is a distribution.
func TestPriorKL(t *testing.T) {
	torchx.Lock()
	for _, sched := range []Schedule{testSched, Geometric{SigmaMin: 1e-4, SigmaMax: 2}} {
		for _, tp := range toyProcesses(t, sched) {
			pi := tp.p.Prior()
			sum := 0.0
			for _, p := range pi {
				sum += p
			}
			if math.Abs(sum-1) > 1e-12 || len(pi) != tp.p.NumStates() {
				t.Fatalf("%s: prior of %d states sums to %g", tp.p.Name(), len(pi), sum)
			}
			q1 := expm(scaled(tp.r, sched.Sigma(1)))
			x0 := states(tp.p.Vocab())
			got := float64s(tp.p.PriorKL(x0))
			for x := range tp.p.Vocab() {
				want := 0.0
				for y, q := range q1[x] {
					if q > 0 {
						want += q * math.Log(q/pi[y])
					}
				}
				if math.Abs(got[x]-want) > 1e-10 {
					t.Errorf("%s %T: PriorKL(%d) = %.12g, want %.12g", tp.p.Name(), sched, x, got[x], want)
				}
			}
			x0.MustDrop()
		}
	}
}

func TestSamplePrior(t *testing.T) {
	torchx.Lock()
	torchx.Seed(3)
	p := NewAbsorbing(4, LogLinear{Eps: 0.2})
	draws := SamplePrior(p, 4, 50000, gotch.CPU).Int64Values()
	masked := 0.0
	for _, d := range draws {
		if d == 4 {
			masked++
		}
	}
	if got := masked / float64(len(draws)); math.Abs(got-0.8) > 0.01 {
		t.Fatalf("mask fraction of prior draws = %.4f, want 0.8", got)
	}
}

// Posteriors is Posterior and ModelPosterior computed together.
func TestPosteriorsShareTheStep(t *testing.T) {
	torchx.Lock()
	for _, tp := range toyProcesses(t, testSched) {
		n, v := tp.p.NumStates(), tp.p.Vocab()
		x0 := ts.MustOfSlice([]int64{0, 1, 2, 3}[:min(4, v)]).MustView([]int64{1, int64(min(4, v))}, true)
		xt := ts.MustOfSlice([]int64{int64(n - 1), 1, 0, 2}[:min(4, v)]).MustView([]int64{1, int64(min(4, v))}, true)
		probs := ts.MustRand([]int64{1, int64(min(4, v)), int64(v)}, gotch.Double, gotch.CPU)
		for _, form := range []Form{Mixture, Proportional} {
			q, m := Posteriors(tp.p, x0, probs, xt, []float64{0.2}, []float64{0.9}, form)
			closeMatrix(t, tp.p.Name()+" q", matrix(q), matrix(Posterior(tp.p, x0, xt, []float64{0.2}, []float64{0.9}, gotch.Double)), 1e-15)
			closeMatrix(t, tp.p.Name()+" model", matrix(m), matrix(ModelPosterior(tp.p, probs, xt, []float64{0.2}, []float64{0.9}, form)), 1e-15)
		}
	}
}
