package losses

import "math"

// gaussLegendre are the 10-point Gauss–Legendre nodes and weights on
// [−1, 1], found by Newton's method on P_10.
func gaussLegendre() (x, w []float64) {
	const n = 10
	for i := 1; i <= n; i++ {
		z := math.Cos(math.Pi * (float64(i) - 0.25) / (n + 0.5))
		var dp float64
		for range 100 {
			p0, p1 := 1.0, z
			for k := 2; k <= n; k++ {
				p0, p1 = p1, ((2*float64(k)-1)*z*p1-(float64(k)-1)*p0)/float64(k)
			}
			dp = n * (z*p1 - p0) / (z*z - 1)
			dz := p1 / dp
			z -= dz
			if math.Abs(dz) < 1e-16 {
				break
			}
		}
		x = append(x, z)
		w = append(w, 2/((1-z*z)*dp*dp))
	}
	return x, w
}

// panels are the quadrature panels on [0,1]: they crowd geometrically
// towards t = 0, where the uniform process's score entropy has an
// integrable log(1/t) singularity, and towards t = 1, where σ'(t) of the
// log-linear schedule peaks.
func panels() []float64 {
	edges := []float64{0}
	for k := 9; k >= 2; k-- {
		edges = append(edges, math.Pow(10, -float64(k)))
	}
	edges = append(edges, 0.05, 0.25, 0.5, 0.75, 0.9)
	for k := 2; k <= 9; k++ {
		edges = append(edges, 1-math.Pow(10, -float64(k)))
	}
	return append(edges, 1)
}

// quadrature is 10-point Gauss–Legendre on each panel: nodes and
// weights for ∫₀¹ f(t) dt.
func quadrature() []node {
	x, w := gaussLegendre()
	edges := panels()
	var out []node
	for p := 1; p < len(edges); p++ {
		a, b := edges[p-1], edges[p]
		for i := range x {
			out = append(out, node{t: a + (b-a)*(x[i]+1)/2, w: w[i] * (b - a) / 2})
		}
	}
	return out
}
