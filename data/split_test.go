package data

import (
	"slices"
	"testing"
)

func TestSplitDocs(t *testing.T) {
	for _, tc := range []struct {
		n      int
		fr     []float64
		counts [3]int
	}{
		{100, []float64{0.9, 0.05, 0.05}, [3]int{90, 5, 5}},
		{60, []float64{0.9, 0.05, 0.05}, [3]int{54, 3, 3}},
		{3, []float64{0.9, 0.05, 0.05}, [3]int{1, 1, 1}},
		{10, []float64{1, 0, 0}, [3]int{10, 0, 0}},
		{10, []float64{0.8, 0.2, 0}, [3]int{8, 2, 0}},
	} {
		s, err := splitDocs(tc.n, tc.fr, 7)
		if err != nil {
			t.Fatal(err)
		}
		var all []int32
		for i, part := range s {
			if len(part) != tc.counts[i] || !slices.IsSorted(part) {
				t.Errorf("n=%d %v: split %d has %d docs (sorted %v), want %d", tc.n, tc.fr, i, len(part), slices.IsSorted(part), tc.counts[i])
			}
			all = append(all, part...)
		}
		slices.Sort(all)
		for i, d := range all {
			if d != int32(i) {
				t.Fatalf("n=%d: splits are not a partition", tc.n)
			}
		}
		again, _ := splitDocs(tc.n, tc.fr, 7)
		other, _ := splitDocs(tc.n, tc.fr, 8)
		if !slices.Equal(again[1], s[1]) || (tc.n == 100 && slices.Equal(other[1], s[1])) {
			t.Errorf("n=%d: split not determined by the seed", tc.n)
		}
	}
	if _, err := splitDocs(1, []float64{0.9, 0.05, 0.05}, 1); err == nil {
		t.Error("1 document split three ways")
	}
}
