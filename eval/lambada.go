package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/torchx"
)

// LoadLambada reads the passages cfg.Lambada names (relative to the run's
// data folder), the first cfg.LambadaLimit of them when that is set. It
// returns nil when LAMBADA is off (cfg.Lambada is "").
func LoadLambada(cfg Config, runData data.Config, vocab *data.Vocab) ([]data.LambadaExample, error) {
	if cfg.Lambada == "" {
		return nil, nil
	}
	path := cfg.Lambada
	if !filepath.IsAbs(path) {
		path = filepath.Join(dataDir(runData), path)
	}
	exs, err := data.LoadLambada(path, vocab)
	if err != nil {
		return nil, fmt.Errorf("eval.lambada: %w", err)
	}
	if cfg.LambadaLimit > 0 && cfg.LambadaLimit < len(exs) {
		exs = exs[:cfg.LambadaLimit]
	}
	return exs, nil
}

// dataDir is the folder relative data paths start from, as the data
// package resolves it.
func dataDir(c data.Config) string {
	if c.Dir != "" {
		return c.Dir
	}
	return data.DefaultDir()
}

// LambadaBound is the perplexity bound over the passages as the MDLM and
// SEDD tables report it: every passage's tokens followed by EOS, all
// concatenated and cut into blocks of the model's length L (the last one
// padded, its padding not scored).
func LambadaBound(ctx context.Context, m Model, cfg Config, vocab *data.Vocab, exs []data.LambadaExample) (Result, error) {
	if len(exs) == 0 {
		return Result{}, fmt.Errorf("eval %s: no passages", results.TaskLAMBADA)
	}
	docs := make([][]int, len(exs))
	for i, ex := range exs {
		docs[i] = slices.Concat(ex.ContextIDs, ex.TargetIDs)
	}
	return Bound(ctx, m, cfg, results.TaskLAMBADA, packWrap(docs, vocab.EOS(), m.SeqLen, cfg.BatchSize))
}

// Accuracy is a fraction of items answered correctly, with its binomial
// standard error √(p(1−p)/N).
type Accuracy struct {
	Value, Stderr float64
	Correct, N    int
}

// LambadaScores are the accuracies of one LAMBADA pass.
type LambadaScores struct {
	// Accuracy is the string match of the filled word, over all passages.
	Accuracy Accuracy
	// InVocab is the same over the passages whose target has no UNK token
	// (a trimmed vocabulary cannot spell the others, so they can never be
	// right); UNKTargets counts those left out.
	InVocab    Accuracy
	UNKTargets int
	// Greedy is lm-eval's token-level check: every target token is the
	// model's argmax given the context and the target tokens before it
	// (for diffusion models, the later target positions masked or, without
	// a mask state, drawn from the prior). A target holding UNK fails it,
	// as it fails the string match: UNK is the most frequent token of a
	// trimmed vocabulary, so a model that predicts it everywhere would
	// otherwise pass every such target.
	Greedy Accuracy
}

// Evaluations are the rows of a LAMBADA pass for task: accuracy,
// accuracy_in_vocab, accuracy_greedy, and unk_targets (a count).
func (l LambadaScores) Evaluations(task string) []results.Evaluation {
	row := func(metric string, a Accuracy) results.Evaluation {
		return results.Evaluation{Task: task, Metric: metric, Value: a.Value, Stderr: a.Stderr, N: int64(a.N)}
	}
	return []results.Evaluation{
		row(results.MetricAccuracy, l.Accuracy),
		row(results.MetricAccuracyInVocab, l.InVocab),
		row(results.MetricAccuracyGreedy, l.Greedy),
		{Task: task, Metric: results.MetricUNKTargets, Value: float64(l.UNKTargets), Stderr: math.NaN(), N: int64(l.Accuracy.N)},
	}
}

func newAccuracy(correct, n int) Accuracy {
	p := float64(correct) / float64(n)
	return Accuracy{Value: p, Stderr: math.Sqrt(p * (1 - p) / float64(n)), Correct: correct, N: n}
}

// LambadaAccuracy is last-word accuracy: the model fills the target
// word's tokens given the context, and a fill is correct when its decoded
// text, stripped of surrounding whitespace, is exactly the target word.
// Beside it: the same over passages whose target the vocabulary can spell
// (no UNK), and lm-eval's token-level greedy check (LambadaScores).
//
// Each passage becomes context · target, the context cut on the left so
// that the whole fits the model's length L; with cfg.LambadaEOS an EOS
// follows the target, telling bidirectional models (never causal ones)
// that the word ends the passage. fillSpans says how the tokens are
// chosen. Passages of equal length share batches, so no padding enters
// any network call.
func LambadaAccuracy(ctx context.Context, m Model, cfg Config, vocab *data.Vocab, exs []data.LambadaExample) (LambadaScores, error) {
	torchx.Lock()
	if err := m.check(); err != nil {
		return LambadaScores{}, err
	}
	if len(exs) == 0 {
		return LambadaScores{}, fmt.Errorf("eval %s accuracy: no passages", results.TaskLAMBADA)
	}
	var tail []int
	if cfg.LambadaEOS {
		tail = []int{vocab.EOS()}
	}
	rows := make([]span, len(exs))
	unk := make([]bool, len(exs))
	for i, ex := range exs {
		k := len(ex.TargetIDs)
		room := m.SeqLen - k - len(tail)
		if room < 1 {
			return LambadaScores{}, fmt.Errorf("eval %s accuracy: passage %d has a target of %d tokens, too long for sequences of %d", results.TaskLAMBADA, i, k, m.SeqLen)
		}
		left := ex.ContextIDs[max(0, len(ex.ContextIDs)-room):]
		if blk := m.blockSize(); blk > 0 {
			// A BD3-LM network reads whole blocks: EOS (a document
			// boundary) fills the first one on the left, never the
			// target's block on the right.
			pad := (blk - (len(left)+k+len(tail))%blk) % blk
			left = slices.Concat(slices.Repeat([]int{vocab.EOS()}, pad), left)
		}
		rows[i] = span{ids: slices.Concat(left, ex.TargetIDs, tail), start: len(left), k: k}
		unk[i] = vocab.UNK() >= 0 && slices.Contains(ex.TargetIDs, vocab.UNK())
	}
	groups := byLength(len(rows), func(i int) int { return len(rows[i].ids) }, cfg.BatchSize)
	torchx.Seed(cfg.Seed)
	prog := newProgress(results.TaskLAMBADA+" accuracy", len(groups), cfg.LogEvery)
	correct, correctInVocab, greedy, unks := 0, 0, 0, 0
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return LambadaScores{}, fmt.Errorf("eval %s accuracy: %w", results.TaskLAMBADA, err)
		}
		batch := make([]span, len(g))
		for j, i := range g {
			batch[j] = rows[i]
		}
		filled, err := fillSpans(m, batch)
		if err != nil {
			return LambadaScores{}, fmt.Errorf("eval %s accuracy: %w", results.TaskLAMBADA, err)
		}
		match, err := greedyMatch(m, batch)
		if err != nil {
			return LambadaScores{}, fmt.Errorf("eval %s greedy check: %w", results.TaskLAMBADA, err)
		}
		for j, i := range g {
			r := rows[i]
			ok := strings.TrimSpace(vocab.Decode(filled[j][r.start:r.start+r.k])) == exs[i].Target
			if ok {
				correct++
			}
			if unk[i] {
				unks++
			} else if ok {
				correctInVocab++
			}
			if match[j] && !unk[i] { // UNK is not the word, even as the argmax
				greedy++
			}
		}
		prog.step()
	}
	out := LambadaScores{Accuracy: newAccuracy(correct, len(rows)), Greedy: newAccuracy(greedy, len(rows)), UNKTargets: unks}
	if len(rows) > unks {
		out.InVocab = newAccuracy(correctInVocab, len(rows)-unks)
	} else {
		out.InVocab = Accuracy{Value: math.NaN(), Stderr: math.NaN()}
	}
	prog.finish("accuracy", out.Accuracy.Value, "correct", correct, "passages", len(rows), "greedy", out.Greedy.Value, "unk_targets", unks)
	return out, nil
}

// byLength groups the indices 0..n−1 into batches of at most size items
// of equal length, in order of length and then index.
func byLength(n int, length func(int) int, size int) [][]int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return length(a) - length(b) })
	var groups [][]int
	for _, i := range idx {
		last := len(groups) - 1
		if last < 0 || len(groups[last]) == size || length(groups[last][0]) != length(i) {
			groups = append(groups, nil)
			last++
		}
		groups[last] = append(groups[last], i)
	}
	return groups
}

// blocks are packed token blocks served as batches (Batches).
type blocks struct {
	tokens [][]int64
	mask   [][]float32
	size   int // batch size
	next   int
}

// packWrap packs documents as data's wrap mode does: each followed by EOS,
// all concatenated and cut every L tokens, the last block padded with EOS
// at mask 0.
func packWrap(docs [][]int, eos, L, batchSize int) *blocks {
	var stream []int64
	for _, d := range docs {
		for _, id := range d {
			stream = append(stream, int64(id))
		}
		stream = append(stream, int64(eos))
	}
	b := &blocks{size: batchSize}
	for at := 0; at < len(stream); at += L {
		toks, mask := make([]int64, L), make([]float32, L)
		for j := range L {
			toks[j] = int64(eos)
			if at+j < len(stream) {
				toks[j], mask[j] = stream[at+j], 1
			}
		}
		b.tokens, b.mask = append(b.tokens, toks), append(b.mask, mask)
	}
	return b
}

// NumBlocks is the number of blocks, for progress lines.
func (b *blocks) NumBlocks() int64 { return int64(len(b.tokens)) }

// Next returns the next batch of blocks, io.EOF after the last.
func (b *blocks) Next() (data.Batch, error) {
	if b.next >= len(b.tokens) {
		return data.Batch{}, io.EOF
	}
	end := min(b.next+b.size, len(b.tokens))
	L := len(b.tokens[0])
	out := data.Batch{B: end - b.next, L: L, Rows: end - b.next}
	for i := b.next; i < end; i++ {
		out.Tokens = append(out.Tokens, b.tokens[i]...)
		out.Mask = append(out.Mask, b.mask[i]...)
	}
	b.next = end
	return out, nil
}
