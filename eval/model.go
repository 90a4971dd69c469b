package eval

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/forward"
	"github.com/dlmlab/difflm/losses"
)

// Model is a trained network with what evaluation must know about it.
type Model struct {
	Net       losses.Net
	Objective losses.Objective
	// Steps is objective.steps: T of a discrete-time bound, 0 for
	// continuous time. Only ExactSteps needs it.
	Steps int
	// Process is the forward process the network was trained with; nil
	// for ar.
	Process forward.Process
	// SeqLen is L, the block length the model was trained on: LAMBADA
	// passages are packed and truncated to it.
	SeqLen int
	// Device is where the network's parameters live; inputs are built
	// there. The zero value means the CPU.
	Device gotch.Device
	// UNK is the id of a trimmed vocabulary's UNK token, 0 when the
	// vocabulary has none (a trimmed vocabulary's UNK is never id 0). Bounds
	// then report the share of scored tokens that are UNK: one token for
	// every word outside the vocabulary makes foreign text (zero-shot
	// corpora) easier to predict, so its bounds need that share beside them.
	UNK int
	// ByteLens is the UTF-8 length of each id's text (data.Vocab.ByteLens),
	// the denominator of bits per character; nil leaves BPC NaN.
	ByteLens []float64
	// Ranks, when set with more than one rank, splits every bound's pass
	// over the ranks of a data-parallel job (eval.seeding per-batch): each
	// computes every W-th batch and all of them get the whole Result.
	// Every rank must then call the same bounds in the same order.
	Ranks Ranks
}

// Ranks is what a split evaluation needs from a process group
// (dist.Group).
type Ranks interface {
	Rank() int
	World() int
	AllReduce(xs []*ts.Tensor, average bool) error
}

// check reports a Model that cannot be evaluated.
func (m Model) check() error {
	switch {
	case m.Net == nil || m.Objective == nil:
		return fmt.Errorf("eval: model without network or objective")
	case m.isAR() && m.Process != nil:
		return fmt.Errorf("eval: objective ar takes no forward process, got %s", m.Process.Name())
	case !m.isAR() && !m.continuous() && m.Process == nil:
		return fmt.Errorf("eval: objective %s needs its forward process", m.Objective.Name())
	case m.SeqLen < 2:
		return fmt.Errorf("eval: sequence length %d, want at least 2", m.SeqLen)
	}
	return nil
}

func (m Model) isAR() bool { return m.Objective.Name() == "ar" }

// continuous reports an embed-and-diffuse model (objective vdm), whose
// Gaussian process is the objective's own.
func (m Model) continuous() bool { return m.Objective.Spec().EmbedDim > 0 }

// CanFill reports whether the model gives clean-token distributions for
// LAMBADA's fill: AR, the denoisers and the scorers; an embed-and-diffuse
// model gives points, whose fill is the ddpm sampler's chain.
func (m Model) CanFill() bool {
	switch m.Objective.(type) {
	case losses.Denoiser, losses.Scorer:
		return true
	}
	return m.isAR()
}

// blockSize is a BD3-LM network's block size, 0 for every other network.
func (m Model) blockSize() int { return m.Objective.Spec().BlockSize }

// discrete reports whether the bound is a sum over T steps that can be
// computed exactly: d3pm, and mdlm in its finite-T form.
func (m Model) discrete() bool {
	switch m.Objective.Name() {
	case "d3pm":
		return true
	case "mdlm":
		return m.Steps > 0
	}
	return false
}

// vocab is V, the number of real tokens.
func (m Model) vocab() int {
	if m.Process != nil {
		return m.Process.Vocab()
	}
	if m.continuous() {
		return m.Objective.Spec().VocabIn
	}
	return m.Objective.Spec().VocabOut
}

func (m Model) device() gotch.Device { return orCPU(m.Device) }

// orCPU is d, or the CPU for the zero Device.
func orCPU(d gotch.Device) gotch.Device {
	if d.Name == "" {
		return gotch.CPU
	}
	return d
}

// tokensTensor is rows of token ids as an int64 [B,L] tensor on device.
func tokensTensor(rows [][]int, device gotch.Device) *ts.Tensor {
	flat := make([]int64, 0, len(rows)*len(rows[0]))
	for _, r := range rows {
		for _, id := range r {
			flat = append(flat, int64(id))
		}
	}
	shape := []int64{int64(len(rows)), int64(len(rows[0]))}
	return ts.MustOfSlice(flat).MustView(shape, true).MustTo(device, true)
}
