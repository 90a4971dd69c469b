package eval

import (
	"fmt"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
	"github.com/dlmlab/difflm/torchx"
)

// span is a sequence whose positions start … start+k−1 are to be filled.
type span struct {
	ids      []int
	start, k int
}

// fillSpans fills the spans of rows (all of one length) greedily, one
// position per row and network call, and returns the filled sequences:
//
//   - ar: left to right, each position the argmax of the next-token
//     distribution given all before it: greedy continuation.
//   - absorbing (mdlm, d3pm, sedd): the span starts masked, and each call
//     unmasks the most confident masked position (largest max_v p(v)) to
//     its argmax; the rest stay masked.
//     A BD3-LM network (bd3lm) picks only among the open positions of
//     the first block that has any, so every block is filled given clean
//     blocks before it, as the network was trained.
//   - uniform, embedding: there is no mask, so the span starts from a draw
//     of the process's prior (torch's generator). Each call commits the
//     most confident open position to its argmax and sets every other open
//     position to its argmax as well (greedy iterative refinement), so the
//     next call sees the network's current best guess instead of noise.
//
// Confidence is the network's probability of its argmax: the softmax over
// the V real tokens of clean-token logits (mdlm, d3pm) or of log-scores
// (sedd, where it is the conditional of that position given the others).
// Time-conditioned networks are told the noise level whose expected noised
// fraction is the one they see: σ = −log(1 − u/n) for u positions still
// open of n (forward.SigmaForFraction).
func fillSpans(m Model, rows []span) ([][]int, error) {
	b, n := len(rows), len(rows[0].ids)
	absorbing := m.Process != nil && m.Process.Name() == "absorbing"
	var prior []int64
	if m.Process != nil && !absorbing {
		prior = forward.SamplePrior(m.Process, int64(b), int64(n), gotch.CPU).Int64Values(true)
	}
	x := make([][]int, b)
	open := make([][]bool, b)
	left := make([]int, b)
	steps := 0
	for r, row := range rows {
		if len(row.ids) != n {
			return nil, fmt.Errorf("fill: rows of %d and %d tokens in one batch", n, len(row.ids))
		}
		x[r], open[r], left[r] = slices.Clone(row.ids), make([]bool, n), row.k
		for p := row.start; p < row.start+row.k; p++ {
			open[r][p] = true
			switch {
			case absorbing:
				x[r][p] = m.Process.Vocab() // the mask state
			case prior != nil:
				x[r][p] = int(prior[r*n+p])
			default: // ar: a placeholder that only later positions see
				x[r][p] = 0
			}
		}
		steps = max(steps, row.k)
	}
	blk := m.blockSize()
	for range steps {
		sigma := make([]float64, b)
		if m.Process != nil {
			for r := range sigma {
				sigma[r] = forward.SigmaForFraction(m.Process.Schedule(), float64(max(left[r], 1))/float64(n))
			}
		}
		best, arg, err := bestTokens(m, x, sigma)
		if err != nil {
			return nil, err
		}
		for r := range rows {
			if left[r] == 0 {
				continue
			}
			pick, first := -1, slices.Index(open[r], true)
			for p := range n {
				// A BD3-LM network decodes block by block: only the first
				// block with open positions is a candidate.
				if !open[r][p] || (blk > 0 && p/blk != first/blk) {
					continue
				}
				if pick < 0 || (!m.isAR() && best[r*n+p] > best[r*n+pick]) {
					pick = p
				}
			}
			x[r][pick], open[r][pick] = int(arg[r*n+pick]), false
			left[r]--
			if prior != nil {
				for p := range n {
					if open[r][p] {
						x[r][p] = int(arg[r*n+p])
					}
				}
			}
		}
	}
	return x, nil
}

// bestTokens is the largest log-probability over the V real tokens and
// its token at every position of x: [B·n] each, row-major.
func bestTokens(m Model, x [][]int, sigma []float64) ([]float64, []int64, error) {
	var best []float64
	var arg []int64
	var err error
	torchx.NoGrad(func() {
		s := torchx.NewScope()
		defer s.Close()
		xt := s.T(tokensTensor(x, m.device()))
		var logp *ts.Tensor
		if logp, err = positionLogProbs(m, xt, sigma); err != nil {
			return
		}
		s.T(logp)
		vals, idx := logp.MustMaxDim(-1, false, false)
		s.T(vals)
		s.T(idx)
		best = s.T(s.T(vals.MustTotype(gotch.Double, false)).MustTo(gotch.CPU, false)).Float64Values()
		arg = s.T(idx.MustTo(gotch.CPU, false)).Int64Values()
	})
	return best, arg, err
}

// positionLogProbs is, for every position l of x, a log-distribution over
// the V real tokens for token l: [B,n,V].
func positionLogProbs(m Model, x *ts.Tensor, sigma []float64) (*ts.Tensor, error) {
	s := torchx.NewScope()
	defer s.Close()
	v := int64(m.vocab())
	if m.isAR() {
		logits := s.T(m.Net.Forward(s.T(losses.ARInput(x, int(v))), nil, false))
		return logits.MustLogSoftmax(-1, logits.DType(), false), nil
	}
	switch obj := m.Objective.(type) {
	case losses.Denoiser:
		return obj.LogX0(m.Net, x, sigma)
	case losses.Scorer:
		ls, err := obj.LogScores(m.Net, x, sigma)
		if err != nil {
			return nil, err
		}
		real := s.T(s.T(ls).MustNarrow(-1, 0, v, false))
		return real.MustLogSoftmax(-1, real.DType(), false), nil
	}
	return nil, fmt.Errorf("objective %s gives neither clean-token probabilities nor scores", m.Objective.Name())
}

// greedyMatch is lm-eval's is_greedy for each row: every target token is
// the argmax of the model's distribution at its position given the
// context and the target tokens before it. ar needs one call (its
// next-token distributions given the true prefix); a diffusion model k
// calls, the j-th with target positions j… masked (absorbing) or drawn
// from the prior (uniform, embedding), at the σ of that noised fraction.
func greedyMatch(m Model, rows []span) ([]bool, error) {
	b, n := len(rows), len(rows[0].ids)
	ok := make([]bool, b)
	for r := range ok {
		ok[r] = true
	}
	check := func(x [][]int, at func(r int) []int) error {
		sigma := make([]float64, b)
		if m.Process != nil {
			for r := range sigma {
				noised := 0
				for p := range n {
					if x[r][p] != rows[r].ids[p] || (m.Process.Name() == "absorbing" && x[r][p] == m.Process.Vocab()) {
						noised++
					}
				}
				sigma[r] = forward.SigmaForFraction(m.Process.Schedule(), float64(max(noised, 1))/float64(n))
			}
		}
		_, arg, err := bestTokens(m, x, sigma)
		if err != nil {
			return err
		}
		for r := range rows {
			for _, p := range at(r) {
				if int(arg[r*n+p]) != rows[r].ids[p] {
					ok[r] = false
				}
			}
		}
		return nil
	}
	if m.isAR() {
		x := make([][]int, b)
		for r := range rows {
			x[r] = rows[r].ids
		}
		err := check(x, func(r int) []int {
			var ps []int
			for j := range rows[r].k {
				ps = append(ps, rows[r].start+j)
			}
			return ps
		})
		return ok, err
	}
	absorbing := m.Process.Name() == "absorbing"
	var prior []int64
	if !absorbing {
		prior = forward.SamplePrior(m.Process, int64(b), int64(n), gotch.CPU).Int64Values(true)
	}
	steps := 0
	for _, r := range rows {
		steps = max(steps, r.k)
	}
	for j := range steps {
		x := make([][]int, b)
		for r, row := range rows {
			x[r] = slices.Clone(row.ids)
			for p := row.start + j; p < row.start+row.k; p++ {
				if absorbing {
					x[r][p] = m.Process.Vocab()
				} else {
					x[r][p] = int(prior[r*n+p])
				}
			}
		}
		if err := check(x, func(r int) []int {
			if j < rows[r].k {
				return []int{rows[r].start + j}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return ok, nil
}
