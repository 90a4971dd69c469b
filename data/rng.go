package data

// splitMix is SplitMix64, used for every seeded shuffle in this package. It
// is implemented here, not taken from math/rand, so that a (seed, epoch)
// always gives the same order whatever the Go version: checkpoints and
// splits must stay reproducible.
type splitMix struct{ s uint64 }

func newRNG(seed uint64, stream ...uint64) *splitMix {
	r := &splitMix{s: seed}
	for _, x := range stream {
		r.s = r.next() ^ (x * 0xd1342543de82ef95)
	}
	return r
}

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// below returns a uniform integer in [0, n) (n > 0), by rejection.
func (r *splitMix) below(n uint64) uint64 {
	limit := -n % n // 2^64 mod n
	for {
		if x := r.next(); x >= limit {
			return x % n
		}
	}
}

// permutation returns a uniformly shuffled 0..n-1 (Fisher–Yates).
func (r *splitMix) permutation(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	for i := n - 1; i > 0; i-- {
		j := r.below(uint64(i + 1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}
