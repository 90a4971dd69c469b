package eval

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/results"
	"github.com/dlmlab/difflm/torchx"
)

// Batches is a source of packed token blocks: a data.Batches pass from
// Corpus.EvalBatches, or the blocks eval packs itself. Next returns io.EOF
// after the last batch.
type Batches interface {
	Next() (data.Batch, error)
}

// Result is a perplexity bound, exp(total NELBO / total tokens), with its
// Monte Carlo standard error.
//
// The error comes from the random times (and the noise x_t drawn at each)
// of the bound's estimator. Each sequence s gets K draws; their mean m_s
// estimates its bound and their sample variance v_s the variance of one
// draw, so the total Σ m_s has variance Σ v_s/K, and
//
//	NLLStderr = √(Σ_s v_s/K) / Tokens,   Stderr = Value · NLLStderr
//
// (the delta method for exp). It measures how far another seed would move
// the number, not how far another test set would: the data are fixed. The
// draws within a batch are stratified, which can only lower the true error
// below this independent-draws estimate (up to a factor n/(n−1) for n
// sequences, Owen 1997), so the figure is conservative.
//
// Stderr is NaN when it cannot be estimated (K = 1 random draws). It is 0
// for ar, whose NLL is exact, and for Exact bounds with K = 1: the sum over
// all T steps has no time error, and the x_t noise that remains (one draw
// per step and sequence) is then not estimated; with K ≥ 2 sweeps Stderr
// estimates exactly that noise.
//
// BPC is the same bound in bits per character: total nats / (ln 2 · Bytes),
// Bytes the UTF-8 length of the scored tokens' text (Model.ByteLens; EOS
// counts 0 bytes, so its nats are charged to the text around it). At
// character level a character is a byte; for BPE it is bits per UTF-8 byte,
// so BPE and character runs of one corpus compare. NaN without ByteLens.
type Result struct {
	Value, Stderr  float64 // perplexity bound and its standard error
	NLL, NLLStderr float64 // the bound in nats per token and its standard error
	BPC, BPCStderr float64 // the bound in bits per character (byte) and its standard error
	Tokens         int64   // tokens scored (padding excluded)
	Bytes          float64 // UTF-8 bytes of the scored tokens (NaN without ByteLens)
	UNKShare       float64 // share of Tokens that are Model.UNK; NaN without one
	Sequences      int     // sequences (blocks) scored
	K              int     // draws per sequence, or full sweeps when Exact
	Exact          bool    // the time integral is exact (ar, or exact_steps)
	// PerSequence holds each scored sequence's bound (the mean of its K
	// draws), in pass order: what a paired comparison of two models on the
	// same sequences and the same draws needs (results.SequenceBounds).
	PerSequence results.SequenceBounds
}

// Bound evaluates the model's perplexity bound on batches (one pass, at
// most cfg.MaxBatches batches). Each sequence gets cfg.TDraws draws,
// stratified across the batch: draw k gives row j the variate
// v_j = (v0 + π(j))/B with v0 uniform and π a random permutation of the
// rows, both fresh for every draw. The permutation matters: with row j
// always in stratum j, a sequence would see times only in one stratum and
// its K draws would estimate neither its bound nor its variance.
//
// The time is t = v (cfg.TImportance off, MDLM's protocol) or t = v² with
// weight 2v = 1/density (on, the default): the same integral, but the
// estimator's variance becomes finite. The bounds weigh masked positions
// by ≈1/t while a position is masked with probability ≈t, so one draw
// at small t is ≈c/t with probability ≈Lt: its second moment ∫ c²L/t dt
// diverges, and uniform draws give estimates with rare huge outliers and
// standard errors that are themselves unreliable. Under t = v² the
// second moment is ∫ 2c²L/√t dt, finite. Discrete-time objectives draw
// step i = ⌊v²T⌋+1 with its probability p_i = √(i/T) − √((i−1)/T) and
// weigh it by 1/(T·p_i). The prior term is known exactly and is kept out
// of the weighting.
//
// With cfg.ExactSteps a discrete-time objective sums all T steps instead
// (u = (i−½)/T, i = 1..T, averaged: the objective maps u to step ⌊uT⌋+1),
// TDraws times. ar is exact and needs one pass. task names the data in
// progress lines.
func Bound(ctx context.Context, m Model, cfg Config, task string, batches Batches) (Result, error) {
	torchx.Lock()
	if err := m.check(); err != nil {
		return Result{}, err
	}
	mode := boundMode{k: cfg.TDraws, importance: cfg.TImportance}
	if m.discrete() {
		mode.steps = m.Steps
	}
	switch {
	case m.isAR():
		mode = boundMode{k: 1, ar: true, exact: true}
	case cfg.ExactSteps && m.discrete():
		mode.exact = true
	case cfg.ExactSteps:
		slog.Info("eval: exact_steps ignored: the bound is continuous-time", "objective", m.Objective.Name(), "task", task)
	}
	split := m.Ranks != nil && m.Ranks.World() > 1
	if split && cfg.Seeding != SeedPerBatch {
		return Result{}, fmt.Errorf("eval %s: eval.seeding %s draws one noise stream over the pass, which %d ranks cannot split; set eval.seeding: %s (and compare runs evaluated the same way)",
			task, cfg.Seeding, m.Ranks.World(), SeedPerBatch)
	}
	torchx.Seed(cfg.Seed)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0xb0d))
	var tot total
	var kept []splitBatch // split: every batch, with this rank's draws
	prog := newProgress(task, 0, cfg.LogEvery)
	for i := 0; cfg.MaxBatches == 0 || i < cfg.MaxBatches; i++ {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("eval %s: %w", task, err)
		}
		b, err := batches.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Result{}, fmt.Errorf("eval %s: batch %d: %w", task, i, err)
		}
		if i == 0 {
			prog.setTotal(expectedBatches(batches, b.B, cfg.MaxBatches))
		}
		if cfg.Seeding == SeedPerBatch {
			torchx.Seed(torchx.MixSeed(uint64(cfg.Seed), i+1))
			rng = rand.New(rand.NewPCG(uint64(cfg.Seed), 0xb0d^uint64(i+1)<<16))
		}
		var draws [][]float64 // nil: another rank's batch
		if !split || i%m.Ranks.World() == m.Ranks.Rank() {
			if draws, err = mode.batch(m, b, rng); err != nil {
				return Result{}, fmt.Errorf("eval %s: batch %d: %w", task, i, err)
			}
			prog.step()
		}
		if split {
			kept = append(kept, splitBatch{b: copyBatch(b), draws: draws})
			continue
		}
		tot.add(draws, b, m.UNK, m.ByteLens)
	}
	if split {
		if err := gatherDraws(m.Ranks, kept, mode.k); err != nil {
			return Result{}, fmt.Errorf("eval %s: %w", task, err)
		}
		for _, sb := range kept {
			tot.add(sb.draws, sb.b, m.UNK, m.ByteLens)
		}
	}
	res, err := tot.result(mode, m.UNK)
	if err != nil {
		return Result{}, fmt.Errorf("eval %s: %w", task, err)
	}
	prog.finish("ppl_bound", res.Value, "stderr", res.Stderr, "nll", res.NLL, "tokens", res.Tokens, "unk_share", res.UNKShare)
	return res, nil
}

// boundMode is how the time integral is estimated.
type boundMode struct {
	k          int  // draws, or sweeps when exact
	ar         bool // exact without time
	exact      bool // sum over all steps (or ar)
	importance bool // t = v² with weights, else t = v
	steps      int  // T of a discrete-time bound, 0 in continuous time
}

// upload is b's real rows as tokens x0 and loss weights w [rows, L] on dev.
func upload(b data.Batch, dev gotch.Device) (x0, w *ts.Tensor, err error) {
	if b.Rows < 1 || len(b.Tokens) != b.B*b.L || len(b.Mask) != b.B*b.L {
		return nil, nil, fmt.Errorf("malformed batch: %d rows of %dx%d, %d tokens, %d mask entries", b.Rows, b.B, b.L, len(b.Tokens), len(b.Mask))
	}
	n := b.Rows * b.L
	shape := []int64{int64(b.Rows), int64(b.L)}
	x0 = ts.MustOfSlice(b.Tokens[:n]).MustView(shape, true).MustTo(dev, true)
	w = ts.MustOfSlice(b.Mask[:n]).MustView(shape, true).MustTo(dev, true)
	return x0, w, nil
}

// batch returns the K estimates of every sequence of b: [K][rows] nats.
func (md boundMode) batch(m Model, b data.Batch, rng *rand.Rand) ([][]float64, error) {
	x0, w, err := upload(b, m.device())
	if err != nil {
		return nil, err
	}
	defer x0.MustDrop()
	defer w.MustDrop()
	nelbo := func(u []float64) ([]float64, error) { return m.Objective.NELBO(m.Net, x0, w, u) }
	var prior []float64
	if md.importance && !md.exact {
		prior = priorTerms(m, x0, b)
	}
	out := make([][]float64, md.k)
	for k := range out {
		var err error
		switch {
		case md.ar:
			out[k], err = nelbo(nil)
		case md.exact:
			out[k], err = sweep(nelbo, md.steps, b.Rows)
		case md.importance:
			out[k], err = md.weighted(nelbo, stratified(rng, b.Rows), prior)
		default:
			out[k], err = nelbo(stratified(rng, b.Rows))
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// weighted is the importance-sampled estimate at variates v: the time
// t = v² (or its step) and prior + (NELBO − prior)/(density of the draw).
func (md boundMode) weighted(nelbo func([]float64) ([]float64, error), v, prior []float64) ([]float64, error) {
	u := make([]float64, len(v))
	weight := make([]float64, len(v))
	for j, vj := range v {
		t := vj * vj
		if md.steps == 0 {
			u[j], weight[j] = t, 2*vj
			continue
		}
		T := float64(md.steps)
		i := min(math.Floor(t*T)+1, T)
		u[j] = (i - 0.5) / T
		weight[j] = 1 / (T * (math.Sqrt(i/T) - math.Sqrt((i-1)/T)))
	}
	vals, err := nelbo(u)
	if err != nil {
		return nil, err
	}
	for j := range vals {
		vals[j] = prior[j] + weight[j]*(vals[j]-prior[j])
	}
	return vals, nil
}

// priorTerms is each row's prior term Σ_l w_l·KL(q_1(·|x0_l) ‖ π), the
// part of every NELBO estimate that does not depend on the time.
func priorTerms(m Model, x0 *ts.Tensor, b data.Batch) []float64 {
	out := make([]float64, b.Rows)
	if c, ok := m.Objective.(interface{ PriorPerToken() float64 }); ok && m.Process == nil {
		// vdm: the prior of a point of fixed norm is the same for every token.
		for i := range b.Rows * b.L {
			out[i/b.L] += c.PriorPerToken() * float64(b.Mask[i])
		}
		return out
	}
	kl := m.Process.PriorKL(x0).MustTo(gotch.CPU, true).Float64Values(true)
	for i := range kl {
		out[i/b.L] += kl[i] * float64(b.Mask[i])
	}
	return out
}

// sweep is the exact sum over steps: the mean of the per-step estimates at
// u = (i−½)/T, each of which is T times step i's term.
func sweep(nelbo func([]float64) ([]float64, error), steps, rows int) ([]float64, error) {
	sum := make([]float64, rows)
	u := make([]float64, rows)
	for i := 1; i <= steps; i++ {
		for j := range u {
			u[j] = (float64(i) - 0.5) / float64(steps)
		}
		vals, err := nelbo(u)
		if err != nil {
			return nil, err
		}
		for j, v := range vals {
			sum[j] += v / float64(steps)
		}
	}
	return sum, nil
}

// stratified is one uniform draw per row, one in each stratum
// [i/n, (i+1)/n), the strata dealt to the rows in random order.
func stratified(rng *rand.Rand, n int) []float64 {
	u0 := rng.Float64()
	out := make([]float64, n)
	for j, p := range rng.Perm(n) {
		out[j] = (u0 + float64(p)) / float64(n)
	}
	return out
}

// expectedBatches is the length of the pass when the source knows its
// number of blocks (data.Batches does), else 0.
func expectedBatches(src Batches, batchSize, limit int) int {
	nb, ok := src.(interface{ NumBlocks() int64 })
	if !ok || batchSize < 1 {
		return limit
	}
	total := int((nb.NumBlocks() + int64(batchSize) - 1) / int64(batchSize))
	if limit > 0 {
		total = min(total, limit)
	}
	return total
}

// total accumulates the per-sequence means and variances of a pass.
type total struct {
	nats, variance float64 // Σ m_s and Σ v_s/K
	tokens, unks   int64
	bytes          float64
	sequences      int
	k              int
	seqs           results.SequenceBounds
	hash           hash.Hash
}

// add folds in the draws [K][rows] of one batch, counting the scored
// tokens that are unk (when unk > 0) and their bytes (when byteLens is
// given).
func (t *total) add(draws [][]float64, b data.Batch, unk int, byteLens []float64) {
	k := len(draws)
	t.k = k
	if t.hash == nil {
		t.hash = sha256.New()
	}
	for r := range b.Rows {
		tokens := int64(0)
		nbytes := 0.0
		for j, w := range b.Mask[r*b.L : (r+1)*b.L] {
			if w > 0 {
				id := b.Tokens[r*b.L+j]
				tokens++
				if unk > 0 && id == int64(unk) {
					t.unks++
				}
				if byteLens != nil && id >= 0 && int(id) < len(byteLens) {
					nbytes += byteLens[id]
				}
			}
		}
		if tokens == 0 {
			continue
		}
		mean := 0.0
		for _, d := range draws {
			mean += d[r] / float64(k)
		}
		if k > 1 {
			ss := 0.0
			for _, d := range draws {
				ss += (d[r] - mean) * (d[r] - mean)
			}
			t.variance += ss / float64(k-1) / float64(k)
		}
		t.nats += mean
		t.tokens += tokens
		t.bytes += nbytes
		t.sequences++
		t.seqs.Nats = append(t.seqs.Nats, mean)
		t.seqs.Tokens = append(t.seqs.Tokens, tokens)
		t.seqs.Bytes = append(t.seqs.Bytes, nbytes)
		// The fingerprint covers what was scored: ids and weights.
		_ = binary.Write(t.hash, binary.LittleEndian, b.Tokens[r*b.L:(r+1)*b.L])
		_ = binary.Write(t.hash, binary.LittleEndian, b.Mask[r*b.L:(r+1)*b.L])
	}
}

func (t *total) result(md boundMode, unk int) (Result, error) {
	if t.tokens == 0 {
		return Result{}, fmt.Errorf("no tokens to score")
	}
	nll := t.nats / float64(t.tokens)
	se := math.Sqrt(t.variance) / float64(t.tokens)
	switch {
	case md.exact && md.k == 1:
		se = 0
	case md.k == 1:
		se = math.NaN()
	}
	ppl := math.Exp(nll)
	share := math.NaN()
	if unk > 0 {
		share = float64(t.unks) / float64(t.tokens)
	}
	bpc, bpcSE, nbytes := math.NaN(), math.NaN(), math.NaN()
	if t.bytes > 0 && !math.IsNaN(t.bytes) && !math.IsInf(t.bytes, 0) {
		nbytes = t.bytes
		perByte := float64(t.tokens) / t.bytes / math.Ln2
		bpc, bpcSE = nll*perByte, se*perByte
	}
	t.seqs.K = md.k
	t.seqs.Fingerprint = hex.EncodeToString(t.hash.Sum(nil))[:16]
	return Result{Value: ppl, Stderr: ppl * se, NLL: nll, NLLStderr: se, BPC: bpc, BPCStderr: bpcSE,
		Tokens: t.tokens, Bytes: nbytes, UNKShare: share, Sequences: t.sequences, K: md.k, Exact: md.exact,
		PerSequence: t.seqs}, nil
}

// termer is an objective whose bound has named terms (vdm).
type termer interface {
	TermTotals(net losses.Net, x0, weights *ts.Tensor, u []float64) (map[string]float64, float64, error)
}

// BoundTerms is the breakdown of the model's bound into its terms, in
// nats per token, over the same batches as Bound (one stratified draw per
// sequence), for objectives that have named terms; nil otherwise.
func BoundTerms(ctx context.Context, m Model, cfg Config, batches Batches) (map[string]float64, error) {
	torchx.Lock()
	tm, ok := m.Objective.(termer)
	if !ok {
		return nil, nil
	}
	torchx.Seed(cfg.Seed)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7e5))
	sums := map[string]float64{}
	tokens := 0.0
	for n := 0; cfg.MaxBatches == 0 || n < cfg.MaxBatches; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := batches.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		x0, w, err := upload(b, m.device())
		if err != nil {
			return nil, err
		}
		part, tok, err := tm.TermTotals(m.Net, x0, w, stratified(rng, b.Rows))
		x0.MustDrop()
		w.MustDrop()
		if err != nil {
			return nil, err
		}
		for k, v := range part {
			sums[k] += v
		}
		tokens += tok
	}
	if tokens == 0 {
		return nil, fmt.Errorf("eval bound terms: no tokens")
	}
	for k := range sums {
		sums[k] /= tokens
	}
	return sums, nil
}
