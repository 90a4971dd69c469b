package eval

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/sampling"
	"github.com/dlmlab/difflm/torchx"
)

// GenScores describes one batch of generated samples.
type GenScores struct {
	// GenPPL is exp(NLL): the perplexity of the samples under the AR
	// reference as MDLM's compute_generative_perplexity scores it, NLL
	// being its nats per token over all samples' counted tokens: every
	// token except EOS, plus each sample's first EOS (later EOS are
	// padding), after the reference's BOS, averaged per token over all
	// samples. Samples are independent draws, so the standard errors are
	// those of a ratio of sample means (NLL) and, by the delta method,
	// GenPPL·NLLStderr. All are NaN without a reference.
	GenPPL, GenPPLStderr float64
	NLL, NLLStderr       float64
	// GenPPLSEDD is SEDD's protocol: the mean over samples of each
	// sample's exp(mean NLL over all its positions), with its standard
	// error. It weighs a bad sample more than GenPPL does (Jensen: it is
	// never below exp of the per-sample mean NLL).
	GenPPLSEDD, GenPPLSEDDStderr float64
	// Entropy is the mean over samples of the entropy (nats) of each
	// sample's own token histogram, as MDLM reports it: low values flag
	// repetitive samples that a reference may still score well.
	Entropy, EntropyStderr float64
	// Distinct[n−1] is the mean over samples of distinct-n, the fraction
	// of a sample's n-grams that are unique within it (n = 1..4).
	Distinct [4]float64
	// PerSample holds each sample's scores, in the order of the samples.
	PerSample []SampleScore
	Samples   int
	Tokens    int64
	// ModelCalls and TokensPerS come from the sampler's result: network
	// evaluations, and generated tokens per second of sampling.
	ModelCalls int
	TokensPerS float64
}

// SampleScore is one sample's scores.
type SampleScore struct {
	NLL     float64 // nats per counted token under the reference (MDLM's counting; NaN without one)
	GenPPL  float64 // exp(NLL)
	Entropy float64 // of the sample's token histogram, nats
}

// Generative perplexity protocols, recorded with every sample row.
const (
	ProtocolMDLM = "mdlm" // GenPPL: per token over all samples, EOS after the first excluded
	ProtocolSEDD = "sedd" // GenPPLSEDD: mean over samples of exp(per-sample mean NLL)
)

// ScoreSamples scores the samples of one sampler run: under ref (nil to
// skip the generative perplexity) in batches of batchSize, plus the
// reference-free entropy and distinct-n.
func ScoreSamples(ref *Reference, res sampling.Result, batchSize int) (GenScores, error) {
	torchx.Lock()
	n := len(res.Tokens)
	if n == 0 {
		return GenScores{}, fmt.Errorf("eval gen: no samples")
	}
	g := GenScores{Samples: n, ModelCalls: res.ModelCalls, PerSample: make([]SampleScore, n)}
	nats, lens, ent := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, s := range res.Tokens {
		if len(s) == 0 {
			return GenScores{}, fmt.Errorf("eval gen: sample %d is empty", i)
		}
		lens[i] = float64(len(s))
		g.Tokens += int64(len(s))
		ent[i] = unigramEntropy(s)
		g.PerSample[i].Entropy = ent[i]
		for k := range g.Distinct {
			g.Distinct[k] += distinctN(s, k+1) / float64(n)
		}
	}
	if secs := res.Elapsed.Seconds(); secs > 0 {
		g.TokensPerS = float64(g.Tokens) / secs
	}
	g.Entropy, g.EntropyStderr = ratioMean(ent, ones(n))
	g.GenPPL, g.GenPPLStderr, g.NLL, g.NLLStderr = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	g.GenPPLSEDD, g.GenPPLSEDDStderr = math.NaN(), math.NaN()
	if ref == nil {
		for i := range g.PerSample {
			g.PerSample[i].NLL, g.PerSample[i].GenPPL = math.NaN(), math.NaN()
		}
		return g, nil
	}
	counted := make([]float64, n)
	weights := make([][]float32, n)
	for i, s := range res.Tokens {
		weights[i] = mdlmWeights(s, ref.EOS)
		for _, w := range weights[i] {
			counted[i] += float64(w)
		}
	}
	if err := ref.nll(res.Tokens, weights, batchSize, nats); err != nil {
		return GenScores{}, err
	}
	all := make([]float64, n)
	if err := ref.nll(res.Tokens, nil, batchSize, all); err != nil {
		return GenScores{}, err
	}
	sedd := make([]float64, n)
	for i := range g.PerSample {
		g.PerSample[i].NLL = nats[i] / counted[i]
		g.PerSample[i].GenPPL = math.Exp(g.PerSample[i].NLL)
		sedd[i] = math.Exp(all[i] / lens[i])
	}
	g.NLL, g.NLLStderr = ratioMean(nats, counted)
	g.GenPPL = math.Exp(g.NLL)
	g.GenPPLStderr = g.GenPPL * g.NLLStderr
	g.GenPPLSEDD, g.GenPPLSEDDStderr = ratioMean(sedd, ones(n))
	return g, nil
}

// mdlmWeights marks the positions MDLM's generative perplexity counts:
// every token but EOS, and the first EOS (eos < 0: every token).
func mdlmWeights(s []int, eos int) []float32 {
	w := make([]float32, len(s))
	seen := false
	for i, id := range s {
		switch {
		case id != eos || eos < 0:
			w[i] = 1
		case !seen:
			w[i], seen = 1, true
		}
	}
	return w
}

// nll writes each sequence's total NLL (nats) under the reference into
// out, over the positions weights marks (nil: all), scoring batches of
// sequences of equal length with the ar objective's exact NELBO (the code
// the AR baseline trains with).
func (r *Reference) nll(seqs [][]int, weights [][]float32, batchSize int, out []float64) error {
	cfg := losses.DefaultConfig()
	cfg.Name = "ar"
	obj, err := losses.New(cfg, nil, r.Vocab)
	if err != nil {
		return err
	}
	groups := byLength(len(seqs), func(i int) int { return len(seqs[i]) }, max(batchSize, 1))
	for _, g := range groups {
		if l := len(seqs[g[0]]); r.MaxLen > 0 && l > r.MaxLen {
			return fmt.Errorf("eval gen: samples of %d tokens, the reference takes at most %d", l, r.MaxLen)
		}
		rows := make([][]int, len(g))
		for j, i := range g {
			rows[j] = seqs[i]
			for _, id := range seqs[i] {
				if id < 0 || id >= r.Vocab {
					return fmt.Errorf("eval gen: sample %d holds id %d, outside the reference's %d tokens", i, id, r.Vocab)
				}
			}
		}
		x := tokensTensor(rows, orCPU(r.Device))
		var w *ts.Tensor
		if weights != nil {
			var flat []float32
			for _, i := range g {
				flat = append(flat, weights[i]...)
			}
			w = ts.MustOfSlice(flat).MustView(x.MustSize(), true).MustTo(orCPU(r.Device), true)
		}
		vals, err := obj.NELBO(r.Net, x, w, nil)
		x.MustDrop()
		if w != nil {
			w.MustDrop()
		}
		if err != nil {
			return fmt.Errorf("eval gen: reference: %w", err)
		}
		for j, i := range g {
			out[i] = vals[j]
		}
	}
	return nil
}

// ratioMean is Σy/Σx over independent items and its standard error by
// linearisation: √(Σ(y_i − R·x_i)² / (n(n−1))) / mean(x); NaN for n = 1.
// With x = 1 it is the plain mean and its standard error.
func ratioMean(y, x []float64) (float64, float64) {
	var sy, sx float64
	for i := range y {
		sy, sx = sy+y[i], sx+x[i]
	}
	r := sy / sx
	n := float64(len(y))
	if len(y) < 2 {
		return r, math.NaN()
	}
	ss := 0.0
	for i := range y {
		d := y[i] - r*x[i]
		ss += d * d
	}
	return r, math.Sqrt(ss/(n*(n-1))) / (sx / n)
}

func ones(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// unigramEntropy is the entropy in nats of the token histogram of s.
func unigramEntropy(s []int) float64 {
	counts := map[int]int{}
	for _, id := range s {
		counts[id]++
	}
	h := 0.0
	for _, c := range counts {
		p := float64(c) / float64(len(s))
		h -= p * math.Log(p)
	}
	return h
}

// distinctN is the number of distinct n-grams of s over the number of its
// n-grams; 0 when s is shorter than n.
func distinctN(s []int, n int) float64 {
	total := len(s) - n + 1
	if total < 1 {
		return 0
	}
	seen := map[string]bool{}
	for i := range total {
		seen[fmt.Sprint(s[i:i+n])] = true
	}
	return float64(len(seen)) / float64(total)
}
