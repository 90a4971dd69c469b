package eval

import (
	"fmt"

	"github.com/dlmlab/difflm/data"
	"github.com/sugarme/gotch/ts"
)

// splitBatch is one batch of a pass split over ranks: the batch (every
// rank reads them all, to know the pass's order and what was scored) and
// its K draws per row, computed by the rank that owns it.
type splitBatch struct {
	b     data.Batch
	draws [][]float64 // [K][rows]; nil until gathered on the other ranks
}

// gatherDraws gives every rank every batch's draws: each writes its own
// batches' into one zero-filled float64 buffer, and the ranks sum the
// buffers. Adding zeros is exact, so every rank then holds exactly the
// draws the owners computed, and folding them in pass order gives the
// Result one process gives.
func gatherDraws(r Ranks, kept []splitBatch, k int) error {
	n := 0
	for _, sb := range kept {
		n += k * sb.b.Rows
	}
	if n == 0 {
		return nil
	}
	flat := make([]float64, n)
	off := 0
	for _, sb := range kept {
		if sb.draws != nil {
			for d := range k {
				copy(flat[off+d*sb.b.Rows:], sb.draws[d])
			}
		}
		off += k * sb.b.Rows
	}
	x := ts.MustOfSlice(flat)
	defer x.MustDrop()
	if err := r.AllReduce([]*ts.Tensor{x}, false); err != nil {
		return fmt.Errorf("gather the draws of %d batches over %d ranks: %w", len(kept), r.World(), err)
	}
	sum := x.Float64Values()
	off = 0
	for i := range kept {
		rows := kept[i].b.Rows
		kept[i].draws = make([][]float64, k)
		for d := range k {
			kept[i].draws[d] = sum[off+d*rows : off+(d+1)*rows]
		}
		off += k * rows
	}
	return nil
}

// copyBatch copies a batch's slices: a source may reuse them for the next.
func copyBatch(b data.Batch) data.Batch {
	b.Tokens = append([]int64(nil), b.Tokens...)
	b.Mask = append([]float32(nil), b.Mask...)
	return b
}
