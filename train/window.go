package train

import "time"

// tokensStat is the stat that weighs the others (see StepFunc).
const tokensStat = "tokens"

// window gathers what happens between two logging steps and turns it into
// the metrics handed to the sink.
type window struct {
	steps    int
	loss     float64 // sum over steps of the batch loss
	gradNorm float64 // sum over steps of the pre-clipping norm
	tokens   int64   // tokens processed (B·L per step)
	sum      map[string]float64
	weight   map[string]float64
	tokStat  float64 // sum of the "tokens" stat
	start    time.Time
}

func newWindow(now time.Time) *window {
	return &window{sum: map[string]float64{}, weight: map[string]float64{}, start: now}
}

// addMicro adds the stats of one micro-batch of rows rows.
func (w *window) addMicro(stats map[string]float64, rows int) {
	wt := float64(rows)
	if n, ok := stats[tokensStat]; ok {
		wt = n
		w.tokStat += n
	}
	for k, v := range stats {
		if k == tokensStat {
			continue
		}
		w.sum[k] += wt * v
		w.weight[k] += wt
	}
}

// addStep adds one finished optimizer step.
func (w *window) addStep(loss, gradNorm float64, tokens int) {
	w.steps++
	w.loss += loss
	w.gradNorm += gradNorm
	w.tokens += int64(tokens)
}

// metrics returns the window's means; the trainer's own names (loss, lr,
// grad_norm, tokens_per_s) win over stats of the same name.
func (w *window) metrics(lr float64, now time.Time) map[string]float64 {
	m := map[string]float64{}
	for k, s := range w.sum {
		if w.weight[k] != 0 {
			m[k] = s / w.weight[k]
		}
	}
	n := float64(max(1, w.steps))
	if w.tokStat != 0 {
		m[tokensStat] = w.tokStat / n
	}
	m["loss"] = w.loss / n
	m["grad_norm"] = w.gradNorm / n
	m["lr"] = lr
	if secs := now.Sub(w.start).Seconds(); secs > 0 {
		m["tokens_per_s"] = float64(w.tokens) / secs
	}
	return m
}
