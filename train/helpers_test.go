package train

import (
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// tinyLM is the test model: embedding, one ReLU layer, next-token logits.
// With noise on, a random 30% of the inputs are replaced by token 0 (drawn
// from libtorch's global generator, like a diffusion loss), so the resume
// test also checks that a resumed run draws the same noise.
type tinyLM struct {
	vocab           int64
	emb, w1, b1, w2 *ts.Tensor
	noise           bool
}

func newTinyLM(vs *nn.VarStore, vocab, dim, hidden int64, noise bool) *tinyLM {
	torchx.Seed(1234)
	mlp := vs.Root().Sub("mlp")
	return &tinyLM{
		vocab: vocab,
		emb:   vs.Root().MustNewVar("emb", []int64{vocab, dim}, nn.NewRandnInit(0, 0.5)),
		w1:    mlp.MustNewVar("w1", []int64{dim, hidden}, nn.NewRandnInit(0, 0.2)),
		b1:    mlp.MustNewVar("b1", []int64{hidden}, nn.NewConstInit(0)),
		w2:    mlp.MustNewVar("w2", []int64{hidden, vocab}, nn.NewRandnInit(0, 0.2)),
		noise: noise,
	}
}

// loss is a StepFunc: mean next-token cross-entropy of the micro-batch.
func (m *tinyLM) loss(b Batch) (Loss, error) {
	s := torchx.NewScope()
	defer s.Close()
	B, L := int64(b.B), int64(b.L)
	x := s.T(ts.MustOfSlice(b.Tokens).MustView([]int64{B, L}, true))
	inp := s.T(x.MustNarrow(1, 0, L-1, false))
	tgt := s.T(s.T(x.MustNarrow(1, 1, L-1, false)).MustReshape([]int64{-1}, false))
	if m.noise {
		r := s.T(ts.MustRand([]int64{B, L - 1}, gotch.Float, gotch.CPU))
		mask := s.T(r.MustLt(ts.FloatScalar(0.3), false))
		inp = s.T(inp.MustMaskedFill(mask, ts.IntScalar(0), false))
	}
	h := s.T(ts.MustEmbedding(m.emb, inp, -1, false, false))
	h = s.T(h.MustMatmul(m.w1, false))
	h = s.T(h.MustAdd(m.b1, false))
	h = s.T(h.MustRelu(false))
	logits := s.T(h.MustMatmul(m.w2, false))
	flat := s.T(logits.MustReshape([]int64{-1, m.vocab}, false))
	loss := flat.MustCrossEntropyLoss(tgt, ts.None, 1, -100, 0, false)
	nll, err := item(loss)
	if err != nil {
		return Loss{}, err
	}
	return Loss{Value: loss, Stats: map[string]float64{"nll": nll, tokensStat: float64(B * (L - 1))}}, nil
}

// seqBatcher yields sequences that follow x' = (3x + 1) mod vocab from a
// start token that depends only on the position, so the model can learn
// them and the stream is a pure function of the saved position.
type seqBatcher struct {
	pos         uint64
	vocab, b, l int
}

func (s *seqBatcher) Next() (Batch, error) {
	out := Batch{B: s.b, L: s.l, Tokens: make([]int64, s.b*s.l)}
	for r := 0; r < s.b; r++ {
		z := (s.pos*uint64(s.b) + uint64(r) + 1) * 0x9e3779b97f4a7c15
		x := int64((z ^ (z >> 29)) % uint64(s.vocab))
		for j := 0; j < s.l; j++ {
			out.Tokens[r*s.l+j] = x
			x = (3*x + 1) % int64(s.vocab)
		}
	}
	s.pos++
	return out, nil
}

func (s *seqBatcher) State() ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, s.pos), nil
}

func (s *seqBatcher) Restore(state []byte) error {
	if len(state) != 8 {
		return fmt.Errorf("seqBatcher state has %d bytes, want 8", len(state))
	}
	s.pos = binary.LittleEndian.Uint64(state)
	return nil
}

// record is one LogMetrics call.
type record struct {
	step  int
	split string
	m     map[string]float64
}

// memSink keeps what it is given; if w is set it also writes "step loss"
// lines of the train split there.
type memSink struct {
	records []record
	w       io.Writer
}

func (s *memSink) LogMetrics(step int, split string, m map[string]float64) error {
	s.records = append(s.records, record{step, split, m})
	if s.w != nil && split == "train" {
		_, err := fmt.Fprintf(s.w, "%d %.9g\n", step, m["loss"])
		return err
	}
	return nil
}

// testConfig is a small CPU configuration; tests change what they need.
func testConfig() Config {
	c := DefaultConfig()
	c.Steps, c.BatchSize, c.LR, c.Warmup = 10, 8, 1e-2, 2
	c.CkptEvery, c.KeepLast, c.LogEvery, c.EvalEvery = 5, 2, 1, 0
	c.EMA, c.Threads, c.Device = 0.9, 1, "cpu"
	return c
}

// newModel builds the tiny model used by most tests (vocabulary 16).
func newModel(noise bool) (*nn.VarStore, *tinyLM) {
	vs := nn.NewVarStore(gotch.CPU)
	return vs, newTinyLM(vs, 16, 8, 16, noise)
}

// newTrainer builds a tiny model and a quiet trainer in a fresh run folder.
func newTrainer(t *testing.T, cfg Config, noise bool) (*Trainer, *tinyLM, string) {
	t.Helper()
	vs, m := newModel(noise)
	dir := filepath.Join(t.TempDir(), "run")
	tr, err := New(cfg, vs, dir, map[string]string{"config": "test"})
	if err != nil {
		t.Fatal(err)
	}
	tr.Progress = nil
	return tr, m, dir
}

// values returns a tensor's elements as float64.
func values(x *ts.Tensor) []float64 {
	out := make([]float64, x.Numel())
	d := x.MustTotype(gotch.Double, false)
	defer d.MustDrop()
	d.MustCopyData(out, uint(len(out)))
	return out
}
