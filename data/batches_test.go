package data

import (
	"io"
	"slices"
	"strings"
	"testing"
)

func manyDocs() [][]int32 {
	var docs [][]int32
	for i := range 200 {
		d := make([]int32, 1+i%37)
		for k := range d {
			d[k] = int32(i)
		}
		docs = append(docs, d)
	}
	return docs
}

// Saving the position and restoring it into a fresh iterator gives the
// identical next batch, mid-epoch and across epoch boundaries.
func TestBatchesSaveRestore(t *testing.T) {
	ds := testDataset(manyDocs(), nil)
	p := Packing{SeqLen: 16, Mode: "wrap", BOS: true}
	o := BatchOptions{BatchSize: 5, Shuffle: true, Seed: 42, Loop: true}
	a, err := ds.Batches(p, o)
	if err != nil {
		t.Fatal(err)
	}
	n := a.NumBlocks()
	for step := range 3 * int(n) / 5 {
		pos, err := a.Position().MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := a.Next()
		var q Position
		if err := q.UnmarshalBinary(pos); err != nil {
			t.Fatal(err)
		}
		b, _ := ds.Batches(p, o)
		if err := b.Restore(q); err != nil {
			t.Fatal(err)
		}
		got, _ := b.Next()
		if !slices.Equal(got.Tokens, want.Tokens) || !slices.Equal(got.Mask, want.Mask) || got.Epoch != want.Epoch {
			t.Fatalf("step %d: restored batch differs", step)
		}
	}
	if a.Epoch() < 2 {
		t.Fatalf("only reached epoch %d", a.Epoch())
	}
}

// Each epoch visits every block once, in a different order drawn from
// (seed, epoch), the same for the same seed.
func TestBatchesEpochShuffle(t *testing.T) {
	ds := testDataset(manyDocs(), nil)
	p := Packing{SeqLen: 8, Mode: "pad"}
	order := func(seed uint64) [][]int64 {
		it, _ := ds.Batches(p, BatchOptions{BatchSize: 1, Shuffle: true, Seed: seed, Loop: true})
		n := int(it.NumBlocks())
		var epochs [][]int64
		for range 3 {
			var firsts []int64
			for range n {
				b, _ := it.Next()
				firsts = append(firsts, b.Tokens[0]*1000+b.Tokens[7])
			}
			epochs = append(epochs, firsts)
		}
		return epochs
	}
	a, b, c := order(1), order(1), order(2)
	for e := range a {
		if !slices.Equal(a[e], b[e]) {
			t.Fatal("same seed, different order")
		}
		s := slices.Clone(a[e])
		slices.Sort(s)
		s0 := slices.Clone(a[0])
		slices.Sort(s0)
		if !slices.Equal(s, s0) {
			t.Fatal("an epoch is not a permutation of the blocks")
		}
	}
	if slices.Equal(a[0], a[1]) || slices.Equal(a[0], c[0]) {
		t.Error("epochs or seeds do not reshuffle")
	}
}

func TestBatchesEvalPassAndRestoreErrors(t *testing.T) {
	ds := testDataset(manyDocs(), nil)
	p := Packing{SeqLen: 16, Mode: "wrap"}
	it, _ := ds.Batches(p, BatchOptions{BatchSize: 7})
	n, rows, batches := it.NumBlocks(), 0, 0
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		rows += b.Rows
		batches++
	}
	if int64(rows) != n || batches != int((n+6)/7) {
		t.Errorf("%d rows in %d batches, want %d blocks", rows, batches, n)
	}
	shuf, _ := ds.Batches(p, BatchOptions{BatchSize: 7, Shuffle: true, Seed: 3})
	if err := shuf.Restore(it.Position()); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("restoring an unshuffled position into a shuffled iterator: %v", err)
	}
	other, _ := testDataset(manyDocs()[:50], nil).Batches(p, BatchOptions{BatchSize: 7})
	if err := other.Restore(it.Position()); err == nil {
		t.Error("position restored onto other data")
	}
	if err := (&Position{}).UnmarshalBinary([]byte("{")); err == nil {
		t.Error("bad position bytes accepted")
	}
}
