package main

import (
	"context"
	"fmt"
)

// bench is filled in by the benchmark work (Go vs PyTorch training speed,
// sampler table).
func bench(ctx context.Context, cfg *Config, o options) error {
	return fmt.Errorf("-mode bench: not yet available")
}
