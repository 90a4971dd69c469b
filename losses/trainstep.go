package losses

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/dlmlab/difflm/train"
)

// TrainStep is the trainer's view of an objective: it uploads a batch
// (tokens [B,L], and the padding weights when the batch has them) to dev,
// returns the objective's loss and the stats the trainer logs: "tokens"
// (which weights the others), "nelbo" and "prior" per token, and "ce" for
// the hybrid objective. A network that finishes its backward pass itself
// (models.Transformer on lanes) gets that step after the loss's.
func TrainStep(obj Objective, net Net, dev gotch.Device) train.StepFunc {
	var finish func() error
	if f, ok := net.(interface{ FinishBackward() error }); ok {
		finish = f.FinishBackward
	}
	return func(b train.Batch) (train.Loss, error) {
		shape := []int64{int64(b.B), int64(b.L)}
		x0 := ts.MustOfSlice(b.Tokens).MustView(shape, true).MustTo(dev, true)
		defer x0.MustDrop()
		var w *ts.Tensor
		if len(b.Weights) > 0 {
			w = ts.MustOfSlice(b.Weights).MustView(shape, true).MustTo(dev, true)
			defer w.MustDrop()
		}
		loss, st, err := obj.Loss(net, x0, w)
		if err != nil {
			return train.Loss{}, err
		}
		stats := map[string]float64{"tokens": st.Tokens, "nelbo": st.NELBO, "prior": st.Prior}
		if obj.Name() == "d3pm" {
			stats["ce"] = st.CE
		}
		return train.Loss{Value: loss, Stats: stats, Finish: finish}, nil
	}
}
