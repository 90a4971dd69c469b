package train

import "math"

// LRAt returns the learning rate of optimizer step s (1-based): a linear
// warmup reaching LR at step Warmup, then LR (constant) or a half cosine
// from LR down to MinLRRatio·LR at step Steps (cosine).
func (c Config) LRAt(s int) float64 {
	if s <= c.Warmup {
		return c.LR * float64(s) / float64(c.Warmup)
	}
	if c.Schedule != "cosine" || c.Steps <= c.Warmup {
		return c.LR
	}
	progress := math.Min(1, float64(s-c.Warmup)/float64(c.Steps-c.Warmup))
	low := c.LR * c.MinLRRatio
	return low + (c.LR-low)*0.5*(1+math.Cos(math.Pi*progress))
}
