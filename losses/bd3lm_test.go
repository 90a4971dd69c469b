package losses

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/models"
	"github.com/dlmlab/difflm/torchx"
)

// bd3lmNet is a tiny transformer for obj's spec, initialised from seed.
func bd3lmNet(t *testing.T, spec NetSpec, seed int64) *models.Transformer {
	t.Helper()
	cfg := models.DefaultConfig()
	cfg.Dropout, cfg.MaxLen = 0, 64
	torchx.Seed(seed)
	m, err := models.New(nn.NewVarStore(gotch.CPU).Root(), cfg, models.Spec{
		VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, Causal: spec.Causal, TimeCond: spec.TimeCond, BlockSize: spec.BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randomTokens(t *testing.T, b, l, v int64, seed int64) *ts.Tensor {
	t.Helper()
	torchx.Seed(seed)
	return ts.MustRandint(v, []int64{b, l}, gotch.Int64, gotch.CPU)
}

// TestBD3LMWholeSequenceBlockIsMDLM: with b = L there is one block, the
// noisy copy sees only itself, and loss and bound are MDLM's on the same
// noise (the same draws from torch's generator) and the same weights.
func TestBD3LMWholeSequenceBlockIsMDLM(t *testing.T) {
	torchx.Lock()
	const V, L = 6, 8
	proc := forward.NewAbsorbing(V, forward.LogLinear{Eps: 1e-3})
	bd := build(t, "bd3lm", proc, V, func(c *Config) { c.BlockSize = L }).(Objective)
	md := build(t, "mdlm", proc, V, nil).(Objective)
	netB, netM := bd3lmNet(t, bd.Spec(), 7), bd3lmNet(t, md.Spec(), 7)
	x0 := randomTokens(t, 4, L, V, 11)
	defer x0.MustDrop()
	u := []float64{0.1, 0.35, 0.6, 0.9}
	var got, want []float64
	var err error
	torchx.Seed(3)
	if got, err = bd.NELBO(netB, x0, nil, u); err != nil {
		t.Fatal(err)
	}
	torchx.Seed(3)
	if want, err = md.NELBO(netM, x0, nil, u); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-6*math.Max(1, math.Abs(want[i])) {
			t.Errorf("sequence %d: bd3lm NELBO %.9g, mdlm %.9g", i, got[i], want[i])
		}
	}
	torchx.Seed(5)
	lb, sb, err := bd.Loss(netB, x0, nil)
	if err != nil {
		t.Fatal(err)
	}
	torchx.Seed(5)
	lm, sm, err := md.Loss(netM, x0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := scalar(lb), scalar(lm); math.Abs(a-b) > 1e-6 || math.Abs(sb.NELBO-sm.NELBO) > 1e-6 {
		t.Errorf("loss: bd3lm %.9g (NELBO %.9g), mdlm %.9g (NELBO %.9g)", a, sb.NELBO, b, sm.NELBO)
	}
}

// TestBD3LMSingleTokenBlocksAreNextTokenNLL: with b = 1 a masked token is
// predicted from the clean tokens before it only, so the network is an
// autoregressive model p(x_k | x_<k), and the bound's expectation over
// which tokens are masked is Σ_k −α'(t_k)·(−log p(x_k | x_<k)) + prior: for
// the log-linear schedule, where −α' = 1 − ε at every t, (1 − ε) times the
// exact next-token NLL, whatever the times.
func TestBD3LMSingleTokenBlocksAreNextTokenNLL(t *testing.T) {
	torchx.Lock()
	const V, L, eps = 5, 6, 1e-3
	proc := forward.NewAbsorbing(V, forward.LogLinear{Eps: eps})
	bd := build(t, "bd3lm", proc, V, func(c *Config) { c.BlockSize = 1 }).(*bd3lm)
	net := bd3lmNet(t, bd.Spec(), 9)
	x0 := randomTokens(t, 2, L, V, 13)
	defer x0.MustDrop()
	xt := x0.MustFullLike(ts.IntScalar(V), false) // every token masked
	defer xt.MustDrop()
	u := []float64{0.3, 0.75}
	K := L
	tk := bd.blockTimes(u, K, false)
	var bound, prior []float64
	torchx.NoGrad(func() {
		tr, err := bd.terms(net, x0, xt, nil, u, false)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.drop()
		bound, prior = values(tr.bound), values(tr.prior)
	})
	// The next-token NLL by another route: position k's prediction from a
	// copy whose clean tokens from k on are changed (they must not matter).
	x0v := x0.Int64Values()
	for r := range 2 {
		for k := range L {
			alt := append([]int64(nil), x0v[r*L:(r+1)*L]...)
			for j := k; j < L; j++ {
				alt[j] = (alt[j] + 1 + int64(j)) % V
			}
			in := ts.MustOfSlice(append(append(make([]int64, 0, 2*L), xt.Int64Values()[r*L:(r+1)*L]...), alt...)).MustView([]int64{1, 2 * L}, true)
			var nllK float64
			torchx.NoGrad(func() {
				logits := net.Forward(in, nil, false)
				logp := logits.MustLogSoftmax(-1, gotch.Double, true)
				nllK = -logp.Float64Values()[k*V+int(x0v[r*L+k])]
				logp.MustDrop()
			})
			in.MustDrop()
			i := r*L + k
			sched := proc.Schedule()
			pMasked := -math.Expm1(-sched.Sigma(tk[i]))
			expected := pMasked * (bound[i] - prior[i]) // E over the mask of this token's cost
			if want := (1 - eps) * nllK; math.Abs(expected-want) > 1e-5*math.Max(1, want) {
				t.Errorf("row %d token %d (t = %.3f): E[cost] = %.7g, want (1−ε)·NLL = %.7g", r, k, tk[i], expected, want)
			}
		}
	}
}

// TestBD3LMBlockTimes: one draw per sequence gives the blocks stratified
// times (each uniform over draws), clipped to the window only in training.
func TestBD3LMBlockTimes(t *testing.T) {
	proc := forward.NewAbsorbing(4, forward.LogLinear{Eps: 1e-3})
	bd := build(t, "bd3lm", proc, 4, func(c *Config) { c.BlockSize = 2; c.ClipMin, c.ClipMax = 0.3, 0.8 }).(*bd3lm)
	got := bd.blockTimes([]float64{0.1, 0.9}, 4, false)
	want := []float64{0.1, 0.35, 0.6, 0.85, 0.9, 0.15, 0.4, 0.65}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("eval block times %v, want %v", got, want)
		}
	}
	clipped := bd.blockTimes([]float64{0.1, 0.9}, 4, true)
	for i, v := range clipped {
		if w := 0.3 + 0.5*want[i]; math.Abs(v-w) > 1e-12 {
			t.Fatalf("training block times %v, want %v mapped into [0.3, 0.8]", clipped, want)
		}
	}
}

// fullHead hides ForwardRows, so an objective computes every position's
// logits.
type fullHead struct{ m *models.Transformer }

func (f fullHead) Forward(x, sigma *ts.Tensor, train bool) *ts.Tensor {
	return f.m.Forward(x, sigma, train)
}

// TestMaskedHeadSameLossAndGradients: running the output layer only on
// the masked rows (models.Transformer.ForwardRows) gives MDLM's and
// BD3-LM's loss and every parameter's gradient of the full head, to 1e-6.
func TestMaskedHeadSameLossAndGradients(t *testing.T) {
	torchx.Lock()
	const V, L = 9, 8
	proc := forward.NewAbsorbing(V, forward.LogLinear{Eps: 1e-3})
	for _, c := range []struct {
		name  string
		block int
	}{{"mdlm", 0}, {"bd3lm", 4}} {
		obj := build(t, c.name, proc, V, func(cfg *Config) { cfg.BlockSize = max(c.block, 1) }).(Objective)
		spec := obj.Spec()
		x0 := randomTokens(t, 3, L, V, 17)
		cfg := models.DefaultConfig()
		cfg.Dropout, cfg.MaxLen = 0, 64
		torchx.Seed(5)
		vs := nn.NewVarStore(gotch.CPU)
		m, err := models.New(vs.Root(), cfg, models.Spec{VocabIn: spec.VocabIn, VocabOut: spec.VocabOut, BlockSize: spec.BlockSize})
		if err != nil {
			t.Fatal(err)
		}
		params := vs.TrainableVariables() // one order for both runs
		lr, _, gr := lossAndGrads(t, obj, m, x0, nil, params)
		lf, _, gf := lossAndGrads(t, obj, fullHead{m}, x0, nil, params)
		if math.Abs(lr-lf) > 1e-6 {
			t.Errorf("%s: loss %.9g with the masked head, %.9g with the full one", c.name, lr, lf)
		}
		worst := 0.0
		for i := range gf {
			for j := range gf[i] {
				worst = math.Max(worst, math.Abs(gr[i][j]-gf[i][j]))
			}
		}
		if worst > 1e-6 {
			t.Errorf("%s: gradients differ by up to %g", c.name, worst)
		}
		x0.MustDrop()
	}
}

// TestMaskedHeadLogX0: MDLM's clean-token distribution from the masked
// rows only equals the full head's at every position.
func TestMaskedHeadLogX0(t *testing.T) {
	torchx.Lock()
	const V, L = 9, 8
	proc := forward.NewAbsorbing(V, forward.LogLinear{Eps: 1e-3})
	obj := build(t, "mdlm", proc, V, nil).(Denoiser)
	spec := obj.(Objective).Spec()
	net := bd3lmNet(t, spec, 4)
	x0 := randomTokens(t, 2, L, V, 3)
	defer x0.MustDrop()
	torchx.Seed(8)
	xt := proc.Sample(x0, []float64{1.0, 0.4})
	defer xt.MustDrop()
	var a, b []float64
	torchx.NoGrad(func() {
		ra, err := obj.LogX0(net, xt, nil)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := obj.LogX0(fullHead{net}, xt, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, b = ra.Float64Values(), rb.Float64Values()
		ra.MustDrop()
		rb.MustDrop()
	})
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-6 {
			t.Fatalf("log p̃ entry %d: %.9g from the masked rows, %.9g from the full head", i, a[i], b[i])
		}
	}
}
