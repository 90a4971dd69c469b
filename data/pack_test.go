package data

import (
	"fmt"
	"io"
	"slices"
	"testing"
)

const testEOS = 99

func testDataset(docs [][]int32, sel []int32) *Dataset {
	return &Dataset{Name: "t", toks: memTokens(docs), docs: sel, eos: testEOS}
}

// allBlocks returns every block of one ordered pass, with masks.
func allBlocks(t *testing.T, ds *Dataset, p Packing) (rows [][]int64, masks [][]float32) {
	t.Helper()
	it, err := ds.Batches(p, BatchOptions{BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for r := range b.Rows {
			rows = append(rows, b.Tokens[r*b.L:(r+1)*b.L])
			masks = append(masks, b.Mask[r*b.L:(r+1)*b.L])
		}
		for r := b.Rows; r < b.B; r++ {
			for j := r * b.L; j < (r+1)*b.L; j++ {
				if b.Mask[j] != 0 || b.Tokens[j] != testEOS {
					t.Fatal("padding row holds data")
				}
			}
		}
	}
	return rows, masks
}

func TestWrapInvariants(t *testing.T) {
	docs := [][]int32{{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 10, 11}, {12, 13}, {}, {14}}
	for _, bos := range []bool{false, true} {
		for _, L := range []int{2, 3, 5, 8, 64} {
			for _, sel := range [][]int32{nil, {0, 2, 3}} {
				name := fmt.Sprintf("bos=%v L=%d sel=%v", bos, L, sel)
				ds := testDataset(docs, sel)
				rows, masks := allBlocks(t, ds, Packing{SeqLen: L, Mode: "wrap", BOS: bos})
				// The expected stream: [EOS] doc EOS per selected document.
				var want []int64
				for i := range ds.NumDocs() {
					if bos {
						want = append(want, testEOS)
					}
					for _, id := range ds.Doc(i) {
						want = append(want, int64(id))
					}
					want = append(want, testEOS)
				}
				if n := (len(want) + L - 1) / L; len(rows) != n {
					t.Fatalf("%s: %d blocks, want %d", name, len(rows), n)
				}
				var got []int64
				for r, row := range rows {
					if len(row) != L {
						t.Fatalf("%s: block length %d", name, len(row))
					}
					for j, m := range masks[r] {
						if m == 1 {
							got = append(got, row[j])
						} else if r != len(rows)-1 || row[j] != testEOS {
							t.Fatalf("%s: padding inside block %d", name, r)
						}
					}
				}
				// Every token exactly once, in order, EOS between documents.
				if !slices.Equal(got, want) {
					t.Fatalf("%s: stream\n got %v\nwant %v", name, got, want)
				}
			}
		}
	}
}

func TestPadInvariants(t *testing.T) {
	docs := [][]int32{{1, 2, 3}, {4}, {5, 6, 7, 8, 9, 10, 11}, {12, 13}}
	L := 4
	ds := testDataset(docs, nil)
	rows, masks := allBlocks(t, ds, Packing{SeqLen: L, Mode: "pad", BOS: true})
	want := [][]int64{
		{99, 1, 2, 3}, {99, 99, 99, 99}, // doc 0: BOS 1 2 3 | EOS + pad
		{99, 4, 99, 99}, // doc 1
		{99, 5, 6, 7}, {8, 9, 10, 11}, {99, 99, 99, 99},
		{99, 12, 13, 99},
	}
	wantMask := [][]float32{
		{1, 1, 1, 1}, {1, 0, 0, 0},
		{1, 1, 1, 0},
		{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 0, 0, 0},
		{1, 1, 1, 1},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d blocks, want %d", len(rows), len(want))
	}
	for i := range want {
		if !slices.Equal(rows[i], want[i]) || !slices.Equal(masks[i], wantMask[i]) {
			t.Errorf("block %d = %v mask %v, want %v %v", i, rows[i], masks[i], want[i], wantMask[i])
		}
	}
}

func TestPackingErrors(t *testing.T) {
	ds := testDataset([][]int32{{1}}, nil)
	for _, p := range []Packing{{SeqLen: 1, Mode: "wrap"}, {SeqLen: 8, Mode: "zip"}} {
		if _, err := ds.Batches(p, BatchOptions{BatchSize: 1}); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if _, err := ds.Batches(Packing{SeqLen: 8, Mode: "wrap"}, BatchOptions{}); err == nil {
		t.Error("batch size 0 accepted")
	}
	if _, err := testDataset([][]int32{{1}}, []int32{}).Batches(Packing{SeqLen: 8, Mode: "wrap"}, BatchOptions{BatchSize: 1}); err == nil {
		t.Error("empty dataset accepted")
	}
}
