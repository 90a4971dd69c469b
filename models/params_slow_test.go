//go:build slow

package models

import (
	"testing"

	"github.com/dlmlab/difflm/torchx"
)

// TestLargePresetParamCounts allocates the small (85M) and medium (300M)
// presets, about 15 s on two cores: run with `go test -tags slow`.
func TestLargePresetParamCounts(t *testing.T) {
	torchx.Lock()
	checkParamCounts(t, withPreset("small"), withPreset("medium"))
}
