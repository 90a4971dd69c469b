package forward

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// expm is exp(a) by scaling and squaring with a Taylor series, in float64:
// the dense reference every eigen form and closed form is checked against.
func expm(a [][]float64) [][]float64 {
	n := len(a)
	norm := 0.0
	for _, row := range a {
		s := 0.0
		for _, v := range row {
			s += math.Abs(v)
		}
		norm = max(norm, s)
	}
	squarings := 0
	for norm > 0.25 {
		norm /= 2
		squarings++
	}
	scale := math.Pow(2, -float64(squarings))
	out, term := eye(n), eye(n)
	for k := 1; k <= 30; k++ {
		term = matmul(term, a)
		for i := range term {
			for j := range term[i] {
				term[i][j] *= scale / float64(k)
			}
		}
		for i := range out {
			for j := range out[i] {
				out[i][j] += term[i][j]
			}
		}
	}
	for range squarings {
		out = matmul(out, out)
	}
	return out
}

func eye(n int) [][]float64 {
	m := make([][]float64, n)
	for i := range m {
		m[i] = make([]float64, n)
		m[i][i] = 1
	}
	return m
}

func matmul(a, b [][]float64) [][]float64 {
	out := make([][]float64, len(a))
	for i := range a {
		out[i] = make([]float64, len(b[0]))
		for k := range b {
			for j := range b[0] {
				out[i][j] += a[i][k] * b[k][j]
			}
		}
	}
	return out
}

func scaled(a [][]float64, s float64) [][]float64 {
	out := make([][]float64, len(a))
	for i := range a {
		out[i] = make([]float64, len(a[i]))
		for j := range a[i] {
			out[i][j] = a[i][j] * s
		}
	}
	return out
}

// matrix reads a [B,L,N] tensor with B = 1 as an [L][N] Go matrix.
func matrix(t *ts.Tensor) [][]float64 {
	size := t.MustSize()
	vals := float64s(t)
	rows, cols := int(size[len(size)-2]), int(size[len(size)-1])
	out := make([][]float64, rows)
	for i := range out {
		out[i] = vals[i*cols : (i+1)*cols]
	}
	return out
}

// states is the [1,N] tensor 0..N−1, so that Row(states) is the whole
// transition matrix.
func states(n int) *ts.Tensor {
	return ts.MustArange(ts.IntScalar(int64(n)), gotch.Int64, gotch.CPU).MustView([]int64{1, int64(n)}, true)
}

func closeMatrix(t *testing.T, what string, got, want [][]float64, tol float64) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(got[i][j] - want[i][j]); !(d <= tol) {
				t.Fatalf("%s[%d][%d] = %.15g, want %.15g (|diff| %.3g > %.1g)", what, i, j, got[i][j], want[i][j], d, tol)
			}
		}
	}
}

// toyTable is a 6-token, 3-dimensional embedding table without ties in
// cosine similarity; toyGraphR is its k = 2 rate matrix computed here
// independently of knnGraph.
var toyTable = [][]float32{
	{1, 0, 0}, {0.9, 0.3, 0.05}, {0.2, 1, 0.1}, {-0.1, 0.8, 0.7}, {0.05, -0.2, 1}, {-1, 0.3, -0.4},
}

func toyTableTensor() *ts.Tensor {
	var flat []float32
	for _, r := range toyTable {
		flat = append(flat, r...)
	}
	return ts.MustOfSlice(flat).MustView([]int64{int64(len(toyTable)), 3}, true)
}

func toyGraphR(k int) [][]float64 {
	v := len(toyTable)
	unit := make([][]float64, v)
	for i, r := range toyTable {
		n := 0.0
		for _, x := range r {
			n += float64(x) * float64(x)
		}
		n = math.Sqrt(n)
		for _, x := range r {
			unit[i] = append(unit[i], float64(x)/n)
		}
	}
	a := make([][]float64, v)
	for i := range a {
		a[i] = make([]float64, v)
	}
	for x := range v {
		taken := map[int]bool{x: true}
		for range k {
			best, bestSim := -1, math.Inf(-1)
			for y := range v {
				if taken[y] {
					continue
				}
				sim := 0.0
				for d := range unit[x] {
					sim += unit[x][d] * unit[y][d]
				}
				if sim > bestSim {
					best, bestSim = y, sim
				}
			}
			taken[best] = true
			a[x][best]++
			a[best][x]++
		}
	}
	maxRow := 0.0
	for x := range a {
		s := 0.0
		for _, w := range a[x] {
			s += w
		}
		maxRow = max(maxRow, s)
	}
	r := make([][]float64, v)
	for x := range a {
		r[x] = make([]float64, v)
		for y := range a[x] {
			if y != x {
				r[x][y] = a[x][y] / maxRow
				r[x][x] -= a[x][y] / maxRow
			}
		}
	}
	return r
}

// toyProcesses are the three processes at small V with their rate
// matrices written out from the definitions.
type toyProcess struct {
	p Process
	r [][]float64
}

func toyProcesses(t *testing.T, sched Schedule) []toyProcess {
	t.Helper()
	const v = 4
	abs := make([][]float64, v+1)
	for i := range abs {
		abs[i] = make([]float64, v+1)
		if i < v {
			abs[i][v], abs[i][i] = 1, -1
		}
	}
	uni := make([][]float64, v)
	for i := range uni {
		uni[i] = make([]float64, v)
		for j := range uni[i] {
			uni[i][j] = 1.0 / v
		}
		uni[i][i] -= 1
	}
	table := toyTableTensor()
	defer table.MustDrop()
	emb, err := NewEmbedding(table, 2, sched, t.TempDir(), gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Drop)
	return []toyProcess{
		{NewAbsorbing(v, sched), abs},
		{NewUniform(v, sched), uni},
		{emb, toyGraphR(2)},
	}
}
