package data

import (
	"fmt"
	"math"
	"slices"
)

// splitDocs assigns documents 0..n-1 to train, valid and test by a seeded
// permutation (by document, so no document straddles two splits). Each
// split with a positive fraction gets at least one document; each split
// lists its documents in corpus order.
func splitDocs(n int, fractions []float64, seed uint64) ([3][]int32, error) {
	var out [3][]int32
	var count [3]int
	for i := 1; i < 3; i++ {
		count[i] = int(math.Round(fractions[i] * float64(n)))
		if fractions[i] > 0 && count[i] == 0 {
			count[i] = 1
		}
	}
	count[0] = n - count[1] - count[2]
	if count[0] < 1 {
		return out, fmt.Errorf("data.split: %d document(s) cannot be split %v (train would be empty); "+
			"give valid/test sources or a finer data.doc_split (paragraph, line)", n, fractions)
	}
	perm := newRNG(seed, 0x5911).permutation(n)
	at := 0
	for _, s := range []int{2, 1, 0} { // test, valid, then the rest is train
		out[s] = slices.Clone(perm[at : at+count[s]])
		slices.Sort(out[s])
		at += count[s]
	}
	return out, nil
}
