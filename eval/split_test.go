package eval

import (
	"context"
	"testing"

	"github.com/dlmlab/difflm/internal/toydist"
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch/ts"
)

// fakeRanks plays one rank of two in one process: its all-reduce adds the
// buffer the other rank contributed in an earlier pass (peer), and records
// its own (sent).
type fakeRanks struct {
	rank       int
	peer, sent []float64
}

func (f *fakeRanks) Rank() int  { return f.rank }
func (f *fakeRanks) World() int { return 2 }
func (f *fakeRanks) AllReduce(xs []*ts.Tensor, average bool) error {
	own := xs[0].Float64Values()
	f.sent = append([]float64(nil), own...)
	if f.peer != nil {
		for i := range own {
			own[i] += f.peer[i]
		}
	}
	x := ts.MustOfSlice(own)
	defer x.MustDrop()
	xs[0].Copy_(x)
	return nil
}

// A pass split over two ranks (eval.seeding per-batch) gives, on each rank,
// exactly the Result of one process: same bound, standard error and
// per-sequence bounds to the last bit. Rank 1's pass runs first and its
// contribution is handed to rank 0's.
func TestSplitBoundEqualsOneProcess(t *testing.T) {
	torchx.Lock()
	rows, _ := toydist.Dist3x2().Dataset(40)
	m := toyModel(t, true, 0, 1e-3)
	edit := func(c *Config) { c.Seeding, c.BatchSize, c.TDraws = SeedPerBatch, 8, 3 }
	one := bound(t, m, rows, edit) // 5 batches: rank 0 owns 0, 2, 4
	r1 := &fakeRanks{rank: 1}
	m.Ranks = r1
	bound(t, m, rows, edit)
	r0 := &fakeRanks{rank: 0, peer: r1.sent}
	m.Ranks = r0
	two := bound(t, m, rows, edit)
	if two.NLL != one.NLL || two.NLLStderr != one.NLLStderr || two.Tokens != one.Tokens || two.Sequences != one.Sequences {
		t.Errorf("split: %.17g ± %.17g (%d tokens), one process: %.17g ± %.17g (%d tokens)",
			two.NLL, two.NLLStderr, two.Tokens, one.NLL, one.NLLStderr, one.Tokens)
	}
	if two.PerSequence.Fingerprint != one.PerSequence.Fingerprint || len(two.PerSequence.Nats) != len(one.PerSequence.Nats) {
		t.Fatalf("per-sequence bounds: %d (%s), one process %d (%s)", len(two.PerSequence.Nats), two.PerSequence.Fingerprint,
			len(one.PerSequence.Nats), one.PerSequence.Fingerprint)
	}
	for i, v := range one.PerSequence.Nats {
		if two.PerSequence.Nats[i] != v {
			t.Errorf("sequence %d: %v, one process %v", i, two.PerSequence.Nats[i], v)
		}
	}
	// Each rank computed only its own batches: rank 1's buffer holds
	// batches 1 and 3 and zeros where rank 0's go.
	nonzero := 0
	for _, v := range r1.sent {
		if v != 0 {
			nonzero++
		}
	}
	if want := 2 * 8 * 3; nonzero != want {
		t.Errorf("rank 1 contributed %d draws, want %d (2 batches × 8 rows × 3 draws)", nonzero, want)
	}
	// Stream seeding cannot be split.
	if _, err := Bound(context.Background(), m, DefaultConfig(), "toy", rowBatches(rows, 8)); err == nil {
		t.Error("a split pass with eval.seeding stream was accepted")
	}
}

// The stream protocol is what it was: per-batch seeding is a different
// (equally valid) draw of the same estimator, not the same numbers.
func TestSeedingModesDiffer(t *testing.T) {
	torchx.Lock()
	rows, _ := toydist.Dist3x2().Dataset(40)
	m := toyModel(t, true, 0, 1e-3)
	stream := bound(t, m, rows, func(c *Config) { c.BatchSize, c.TDraws = 8, 3 })
	again := bound(t, m, rows, func(c *Config) { c.BatchSize, c.TDraws = 8, 3 })
	per := bound(t, m, rows, func(c *Config) { c.Seeding, c.BatchSize, c.TDraws = SeedPerBatch, 8, 3 })
	if stream.NLL != again.NLL {
		t.Errorf("stream seeding is not reproducible: %v then %v", stream.NLL, again.NLL)
	}
	if per.NLL == stream.NLL {
		t.Errorf("per-batch and stream seeding drew the same numbers (%v)", per.NLL)
	}
}
