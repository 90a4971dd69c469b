package forward

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sugarme/gotch"
)

// Config is the `process:` section of a run configuration.
type Config struct {
	// Name is absorbing|uniform|embedding, gaussian (embed-and-diffuse: a
	// Gaussian on learned token embeddings, see Gaussian), or none for the
	// autoregressive baseline, which has no forward process.
	Name string `mapstructure:"name"`
	// Schedule is loglinear|cosine|geometric (see Schedule).
	Schedule string `mapstructure:"schedule"`
	// Eps is ε of the loglinear and cosine schedules: α(1) = ε.
	Eps float64 `mapstructure:"eps"`
	// SigmaMin and SigmaMax bound the geometric schedule.
	SigmaMin float64 `mapstructure:"sigma_min"`
	SigmaMax float64 `mapstructure:"sigma_max"`
	// KnnK is k of the embedding process's nearest-neighbour graph.
	KnnK int `mapstructure:"knn_k"`
	// Embedding names the frozen table of the embedding process:
	// FILE.npy (float32 or float64 [V,D]), FILE.safetensors:TENSOR, or
	// checkpoint:FILE:TENSOR (a training checkpoint, also safetensors).
	Embedding string `mapstructure:"embedding"`
	// EigenCacheDir holds the eigendecompositions of embedding graphs,
	// keyed by the sha256 of the table and k.
	EigenCacheDir string `mapstructure:"eigen_cache_dir"`
	// EmbedDim, GammaMin and GammaMax are the gaussian process's embedding
	// dimension d and its log-SNR range γ(0) … γ(1) (VDM's −13.3 … 5).
	EmbedDim int     `mapstructure:"embed_dim"`
	GammaMin float64 `mapstructure:"gamma_min"`
	GammaMax float64 `mapstructure:"gamma_max"`
}

// Gaussian is the gaussian process the config describes.
func (c Config) Gaussian() Gaussian {
	return Gaussian{Dim: c.EmbedDim, GammaMin: c.GammaMin, GammaMax: c.GammaMax}
}

// DefaultConfig is the absorbing process with MDLM's log-linear schedule.
func DefaultConfig() Config {
	return Config{
		Name:          "absorbing",
		Schedule:      "loglinear",
		Eps:           1e-3,
		SigmaMin:      1e-4,
		SigmaMax:      20,
		KnnK:          10,
		EigenCacheDir: ".cache/eigen",
		EmbedDim:      16,
		GammaMin:      -13.3,
		GammaMax:      5,
	}
}

var (
	processNames  = []string{"absorbing", "uniform", "embedding", "gaussian", "none"}
	scheduleNames = []string{"loglinear", "cosine", "geometric"}
)

// Validate checks every key without touching the file system (files are
// checked by New) and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("process.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !slices.Contains(processNames, c.Name) {
		bad("name", "%q is not one of %s", c.Name, strings.Join(processNames, "|"))
	}
	if c.Name == "none" {
		return errors.Join(errs...)
	}
	if c.Name == "gaussian" {
		if c.EmbedDim < 1 {
			bad("embed_dim", "%d, want at least 1", c.EmbedDim)
		}
		if !(c.GammaMin < c.GammaMax) || math.IsInf(c.GammaMin, 0) || math.IsInf(c.GammaMax, 0) {
			bad("gamma_min", "want finite gamma_min < gamma_max, got %v and %v", c.GammaMin, c.GammaMax)
		}
		return errors.Join(errs...)
	}
	switch c.Schedule {
	case "loglinear", "cosine":
		if !(c.Eps > 0 && c.Eps < 1) {
			bad("eps", "%v is outside (0, 1)", c.Eps)
		}
	case "geometric":
		if !(c.SigmaMin > 0 && c.SigmaMin < c.SigmaMax && !math.IsInf(c.SigmaMax, 1)) {
			bad("sigma_min", "want 0 < sigma_min < sigma_max < inf, got sigma_min %v, sigma_max %v", c.SigmaMin, c.SigmaMax)
		}
	default:
		bad("schedule", "%q is not one of %s", c.Schedule, strings.Join(scheduleNames, "|"))
	}
	if c.Name == "embedding" {
		if c.KnnK < 1 {
			bad("knn_k", "%d must be at least 1", c.KnnK)
		}
		if _, err := parseSource(c.Embedding); err != nil {
			bad("embedding", "%v", err)
		}
		if c.EigenCacheDir == "" {
			bad("eigen_cache_dir", "must not be empty")
		}
	}
	return errors.Join(errs...)
}

// NewSchedule builds the configured schedule.
func (c Config) NewSchedule() (Schedule, error) {
	switch c.Schedule {
	case "loglinear":
		return LogLinear{Eps: c.Eps}, nil
	case "cosine":
		return Cosine{Eps: c.Eps}, nil
	case "geometric":
		return Geometric{SigmaMin: c.SigmaMin, SigmaMax: c.SigmaMax}, nil
	}
	return nil, fmt.Errorf("process.schedule: %q is not one of %s", c.Schedule, strings.Join(scheduleNames, "|"))
}

// New builds the configured process over a vocabulary of V real tokens.
// The embedding process loads its table and computes (or loads from the
// cache) its eigendecomposition on device; the other processes hold no
// tensors and follow the device of their inputs. Names "none" and
// "gaussian" are errors: the caller builds no Process for the
// autoregressive baseline, and Config.Gaussian for the gaussian one.
func New(c Config, V int, device gotch.Device) (Process, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if V < 2 {
		return nil, fmt.Errorf("process: vocabulary of %d tokens, need at least 2", V)
	}
	sched, err := c.NewSchedule()
	if err != nil {
		return nil, err
	}
	switch c.Name {
	case "absorbing":
		return NewAbsorbing(V, sched), nil
	case "uniform":
		return NewUniform(V, sched), nil
	case "embedding":
		if c.KnnK >= V {
			return nil, fmt.Errorf("process.knn_k: %d must be less than the vocabulary size V=%d", c.KnnK, V)
		}
		table, err := LoadEmbedding(c.Embedding, V)
		if err != nil {
			return nil, fmt.Errorf("process.embedding: %w", err)
		}
		defer table.MustDrop()
		return NewEmbedding(table, c.KnnK, sched, c.EigenCacheDir, device)
	}
	return nil, fmt.Errorf("process.name: %s builds no Process (none: the ar objective needs none; gaussian: see Config.Gaussian)", c.Name)
}
