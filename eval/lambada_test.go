package eval

import (
	"github.com/dlmlab/difflm/internal/toydist"

	"bufio"
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// lambadaSample copies the first n passages of the real LAMBADA file into
// a temporary file and loads them, with a vocabulary trimmed to their
// tokens (V ≈ 500), through LoadLambada with a limit of n−2.
func lambadaSample(t *testing.T, n int) (*data.Vocab, []data.LambadaExample) {
	t.Helper()
	f, err := os.Open(sharedFile(t, "lambada/lambada_test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines, texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for len(lines) < n && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "lambada.jsonl")
	if err := os.WriteFile(path, []byte(joinLines(lines)), 0o644); err != nil {
		t.Fatal(err)
	}
	gpt2, err := data.GPT2Vocab()
	if err != nil {
		t.Fatal(err)
	}
	all, err := data.LoadLambada(path, gpt2)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range all {
		texts = append(texts, ex.Text)
	}
	vocab := trimmedVocab(t, 0, texts...)
	cfg := DefaultConfig()
	cfg.Lambada, cfg.LambadaLimit = "lambada.jsonl", n-2
	exs, err := LoadLambada(cfg, data.Config{Dir: dir}, vocab)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != n-2 {
		t.Fatalf("%d passages loaded with limit %d", len(exs), n-2)
	}
	return vocab, exs
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}

// oracle knows the passages (ids, as the rows are built). A row of n tokens is
// the last n tokens of its passage, except where it is being filled, so
// the oracle finds the passage that agrees with the row best and puts all
// mass on its tokens (the next token for a causal net, which sees the row
// shifted right by one) or, when anti, on the token id after them.
func oracle(passages [][]int64, out, v int, causal, anti bool) *toydist.TableNet {
	return &toydist.TableNet{Out: out, Fn: func(x []int64, _ float64) [][]float64 {
		n := len(x)
		var best []int64
		score := -1
		for _, p := range passages {
			if len(p) < n {
				continue
			}
			suffix, agree := p[len(p)-n:], 0
			for i := range n {
				switch {
				case causal && i > 0 && x[i] == suffix[i-1]:
					agree++
				case !causal && x[i] == suffix[i]:
					agree++
				}
			}
			if agree > score {
				best, score = suffix, agree
			}
		}
		logits := make([][]float64, n)
		for i := range logits {
			logits[i] = make([]float64, out)
			for j := range logits[i] {
				logits[i][j] = -30
			}
			tok := best[i]
			if anti {
				tok = (tok + 1) % int64(v)
			}
			logits[i][tok] = 0
		}
		return logits
	}}
}

// An oracle scores 1.0 and an anti-oracle 0.0 with every objective's way
// of filling the target, by string match and by the token-level greedy
// check: truncated contexts (L = 48) and whole ones, with and without the
// EOS after the target (the oracle knows the rows as they are built).
func TestLambadaAccuracyOracle(t *testing.T) {
	torchx.Lock()
	vocab, exs := lambadaSample(t, 10)
	v := vocab.Size()
	ll := forward.LogLinear{Eps: 1e-3}
	absorbing, uniform := forward.NewAbsorbing(v, ll), forward.NewUniform(v, ll)
	cases := []struct {
		name   string
		obj    losses.Objective
		proc   forward.Process
		out    int
		seqLen int
	}{
		{"mdlm", objective(t, "mdlm", absorbing, v, nil), absorbing, v, 48},
		{"mdlm/whole", objective(t, "mdlm", absorbing, v, nil), absorbing, v, 512},
		{"d3pm/uniform", objective(t, "d3pm", uniform, v, func(c *losses.Config) { c.Steps = 8 }), uniform, v, 48},
		{"sedd/absorbing", objective(t, "sedd", absorbing, v, nil), absorbing, v + 1, 48},
		{"ar", objective(t, "ar", nil, v, nil), nil, v, 48},
		{"ar/whole", objective(t, "ar", nil, v, nil), nil, v, 512},
	}
	for _, eos := range []bool{false, true} {
		var passages [][]int64
		for _, ex := range exs {
			ids := slices.Concat(ex.ContextIDs, ex.TargetIDs)
			if eos {
				ids = append(ids, vocab.EOS())
			}
			var p []int64
			for _, id := range ids {
				p = append(p, int64(id))
			}
			passages = append(passages, p)
		}
		cfg := DefaultConfig()
		cfg.BatchSize, cfg.LambadaEOS = 3, eos
		for _, c := range cases {
			for _, anti := range []bool{false, true} {
				m := Model{Net: oracle(passages, c.out, v, c.proc == nil, anti), Objective: c.obj, Process: c.proc, SeqLen: c.seqLen}
				got, err := LambadaAccuracy(context.Background(), m, cfg, vocab, exs)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				want := newAccuracy(len(exs), len(exs))
				if anti {
					want = newAccuracy(0, len(exs))
				}
				if got.Accuracy != want || got.Greedy != want || got.InVocab != want || got.UNKTargets != 0 {
					t.Errorf("%s (anti %v, eos %v): %+v, want accuracy and greedy %+v", c.name, anti, eos, got, want)
				}
			}
		}
	}
}

// A target holding UNK can never be spelled: it counts against accuracy
// and the greedy check, and is left out of accuracy_in_vocab, whose N
// says how many remain.
func TestLambadaUNKTargets(t *testing.T) {
	torchx.Lock()
	vocab, exs := lambadaSample(t, 10)
	if vocab.UNK() < 0 {
		t.Fatal("trimmed vocabulary without UNK")
	}
	exs[0].TargetIDs = []int{vocab.UNK()}
	var passages [][]int64
	for _, ex := range exs {
		var p []int64
		for _, id := range slices.Concat(ex.ContextIDs, ex.TargetIDs) {
			p = append(p, int64(id))
		}
		passages = append(passages, p)
	}
	v := vocab.Size()
	m := Model{Net: oracle(passages, v, v, true, false), Objective: objective(t, "ar", nil, v, nil), SeqLen: 48}
	got, err := LambadaAccuracy(context.Background(), m, DefaultConfig(), vocab, exs)
	if err != nil {
		t.Fatal(err)
	}
	n := len(exs)
	// The oracle's argmax at the UNK target is UNK: the greedy check
	// must not count that (a model predicting UNK everywhere would pass
	// every UNK target).
	if got.UNKTargets != 1 || got.Accuracy != newAccuracy(n-1, n) || got.InVocab != newAccuracy(n-1, n-1) || got.Greedy != newAccuracy(n-1, n) {
		t.Errorf("scores %+v: want 1 UNK target, accuracy and greedy %d/%d, in-vocabulary %d/%d", got, n-1, n, n-1, n-1)
	}
	rows := got.Evaluations("lambada")
	if len(rows) != 4 || rows[1].Metric != "accuracy_in_vocab" || rows[1].N != int64(n-1) || rows[3].Value != 1 {
		t.Errorf("rows %+v", rows)
	}
}

// The LAMBADA bound scores every passage token and one EOS per passage,
// once: under fixed next-token probabilities it is their mean −log p.
func TestLambadaBoundPacking(t *testing.T) {
	torchx.Lock()
	vocab, exs := lambadaSample(t, 6)
	v := vocab.Size()
	p := make([]float64, v)
	for i := range p {
		p[i] = float64(i+1) / float64(v*(v+1)/2)
	}
	m := Model{Net: fixedNet(p), Objective: objective(t, "ar", nil, v, nil), SeqLen: 48}
	cfg := DefaultConfig()
	cfg.BatchSize = 4
	res, err := LambadaBound(context.Background(), m, cfg, vocab, exs)
	if err != nil {
		t.Fatal(err)
	}
	nats, n := 0.0, int64(0)
	for _, ex := range exs {
		for _, id := range slices.Concat(ex.ContextIDs, ex.TargetIDs, []int{vocab.EOS()}) {
			nats -= math.Log(p[id])
			n++
		}
	}
	if res.Tokens != n || math.Abs(res.NLL-nats/float64(n)) > 1e-9 {
		t.Errorf("bound %.9f over %d tokens, want %.9f over %d", res.NLL, res.Tokens, nats/float64(n), n)
	}
}

func TestPackWrap(t *testing.T) {
	cases := []struct {
		l, batchSize int
		tokens       [][]int64
		mask         [][]float32
		rows         []int // rows of each batch
	}{
		{3, 2, [][]int64{{1, 2, 3}, {9, 4, 9}}, [][]float32{{1, 1, 1}, {1, 1, 1}}, []int{2}},
		{4, 1, [][]int64{{1, 2, 3, 9}, {4, 9, 9, 9}}, [][]float32{{1, 1, 1, 1}, {1, 1, 0, 0}}, []int{1, 1}},
	}
	for _, c := range cases {
		b := packWrap([][]int{{1, 2, 3}, {4}}, 9, c.l, c.batchSize)
		if !slices.EqualFunc(b.tokens, c.tokens, slices.Equal) || !slices.EqualFunc(b.mask, c.mask, slices.Equal) {
			t.Errorf("L=%d: blocks %v mask %v, want %v %v", c.l, b.tokens, b.mask, c.tokens, c.mask)
		}
		for _, want := range c.rows {
			batch, err := b.Next()
			if err != nil || batch.Rows != want || len(batch.Tokens) != want*c.l {
				t.Errorf("L=%d: batch of %d rows (%v), want %d", c.l, batch.Rows, err, want)
			}
		}
		if _, err := b.Next(); err == nil {
			t.Errorf("L=%d: no io.EOF after the last batch", c.l)
		}
	}
}

func TestByLength(t *testing.T) {
	lengths := []int{5, 3, 5, 5, 3, 7}
	got := byLength(len(lengths), func(i int) int { return lengths[i] }, 2)
	want := [][]int{{1, 4}, {0, 2}, {3}, {5}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("groups %v, want %v", got, want)
	}
}
