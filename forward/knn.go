package forward

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/torchx"
)

// graph is the symmetric k-nearest-neighbour graph A of an embedding table
// (D3PM's nearest-neighbour process): y is linked to x when it is among the
// k rows most cosine-similar to x, A = K + Kᵀ for that 0/1 matrix K, and A
// is scaled so that its largest row sum is 1. R = A − diag(A·1) is then a
// rate matrix whose largest exit rate is 1, which uniformization uses.
type graph struct {
	nbr [][]int64   // neighbours of each token, in increasing id order
	wt  [][]float64 // A[x, nbr[x][j]]
}

// knnGraph builds the graph of table [V,D] on device.
func knnGraph(table *ts.Tensor, k int, device gotch.Device) *graph {
	s := torchx.NewScope()
	defer s.Close()
	v := table.MustSize()[0]
	e := s.T(table.MustTo(device, false).MustTotype(gotch.Float, true))
	norm := s.T(e.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false))
	e = s.T(e.MustDiv(s.T(norm.MustClampMin(ts.FloatScalar(1e-12), false)), false))
	et := s.T(e.MustT(false))
	counts := make([]map[int64]float64, v)
	for x := range counts {
		counts[x] = map[int64]float64{}
	}
	const chunk = 1024
	for lo := int64(0); lo < v; lo += chunk {
		n := min(chunk, v-lo)
		sim := e.MustNarrow(0, lo, n, false).MustMatmul(et, true)
		// A token is not its own neighbour.
		self := ts.MustArange(ts.IntScalar(n), gotch.Int64, device).MustAddScalar(ts.IntScalar(lo), true).MustUnsqueeze(1, true)
		sim = sim.MustScatterValue(1, self, ts.FloatScalar(math.Inf(-1)), true)
		self.MustDrop()
		_, idx := sim.MustTopk(int64(k), 1, true, true, true)
		ids := idx.Int64Values(true)
		for i := range n {
			x := lo + i
			for _, y := range ids[i*int64(k) : (i+1)*int64(k)] {
				counts[x][y]++
				counts[y][x]++
			}
		}
	}
	g := &graph{nbr: make([][]int64, v), wt: make([][]float64, v)}
	maxRow := 0.0
	for x, m := range counts {
		row := 0.0
		for y, c := range m {
			g.nbr[x] = append(g.nbr[x], y)
			row += c
		}
		slices.Sort(g.nbr[x])
		for _, y := range g.nbr[x] {
			g.wt[x] = append(g.wt[x], m[y])
		}
		maxRow = max(maxRow, row)
	}
	for x := range g.wt {
		for j := range g.wt[x] {
			g.wt[x][j] /= maxRow
		}
	}
	return g
}

// degree is the largest number of neighbours of any token.
func (g *graph) degree() int {
	d := 0
	for _, n := range g.nbr {
		d = max(d, len(n))
	}
	return d
}

// padded returns the neighbour lists as [V,D] tensors (D = degree):
// neighbour ids, weights A[x,y], and their running sums (the cumulative
// distribution uniformization draws from). A padded slot holds x itself
// with weight 0.
func (g *graph) padded(device gotch.Device) (nbr, wt, cdf *ts.Tensor) {
	v, d := len(g.nbr), g.degree()
	ids := make([]int64, v*d)
	ws := make([]float64, v*d)
	cs := make([]float64, v*d)
	for x := range g.nbr {
		sum := 0.0
		for j := range d {
			ids[x*d+j] = int64(x)
			if j < len(g.nbr[x]) {
				ids[x*d+j] = g.nbr[x][j]
				ws[x*d+j] = g.wt[x][j]
				sum += g.wt[x][j]
			}
			cs[x*d+j] = sum
		}
	}
	shape := []int64{int64(v), int64(d)}
	nbr = ts.MustOfSlice(ids).MustView(shape, true).MustTo(device, true)
	wt = ts.MustOfSlice(ws).MustView(shape, true).MustTo(device, true)
	cdf = ts.MustOfSlice(cs).MustView(shape, true).MustTo(device, true)
	return nbr, wt, cdf
}

// rates is the dense rate matrix R = A − diag(A·1), float64 [V,V], from
// the padded neighbour tensors (padded slots write 0 on the diagonal).
func rates(nbr, wt *ts.Tensor) *ts.Tensor {
	s := torchx.NewScope()
	defer s.Close()
	v := nbr.MustSize()[0]
	a := s.T(ts.MustZeros([]int64{v, v}, gotch.Double, nbr.MustDevice()))
	a = s.T(a.MustScatter(1, nbr, wt, false))
	out := s.T(s.T(wt.MustSumDimIntlist([]int64{1}, false, gotch.Double, false)).MustDiagEmbed(0, 0, 1, false))
	return a.MustSub(out, false)
}

// hash identifies the graph, so that a cached eigendecomposition is only
// used with the graph it was computed from.
func (g *graph) hash() string {
	h := sha256.New()
	for x := range g.nbr {
		binary.Write(h, binary.LittleEndian, int64(len(g.nbr[x])))
		binary.Write(h, binary.LittleEndian, g.nbr[x])
		binary.Write(h, binary.LittleEndian, g.wt[x])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tableKey is the sha256 of an embedding table and k: the cache key.
func tableKey(table *ts.Tensor, k int) string {
	vals := float64s(table)
	buf := []byte("difflm embedding eigen v1")
	for _, d := range table.MustSize() {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
	}
	buf = binary.LittleEndian.AppendUint64(buf, uint64(k))
	for _, v := range vals {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(v)))
	}
	h := sha256.Sum256(buf)
	return hex.EncodeToString(h[:])
}
