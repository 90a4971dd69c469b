package dist

import (
	"fmt"
	"time"
)

// Config is the `dist:` section: how the ranks of a data-parallel job
// talk. Whether a run is such a job is the launcher's to say (torchrun's
// or Slurm's environment, or -nproc), not the config's, so one config
// runs on one process or many.
type Config struct {
	// Backend is auto (NCCL on CUDA, Gloo on CPU), gloo or nccl.
	Backend string `mapstructure:"backend"`
	// Timeout bounds joining the job and every collective, as a Go
	// duration ("10m"): a rank that dies or hangs makes the others fail
	// within it instead of waiting for ever.
	Timeout string `mapstructure:"timeout"`
}

// DefaultConfig is auto and ten minutes (DefaultTimeout).
func DefaultConfig() Config { return Config{Backend: "auto", Timeout: DefaultTimeout.String()} }

// Validate checks the keys.
func (c Config) Validate() error {
	if c.Backend != "auto" && c.Backend != "gloo" && c.Backend != "nccl" {
		return fmt.Errorf("dist.backend: %q is not one of auto|gloo|nccl", c.Backend)
	}
	if d, err := time.ParseDuration(c.Timeout); err != nil || d <= 0 {
		return fmt.Errorf("dist.timeout: %q is not a positive duration such as 10m or 90s", c.Timeout)
	}
	return nil
}

// Apply sets o's backend (auto: NCCL when the job runs on CUDA) and
// timeout from c, which must be valid.
func (c Config) Apply(o *Options, cuda bool) error {
	if err := c.Validate(); err != nil {
		return err
	}
	o.Backend = c.Backend
	if o.Backend == "auto" {
		o.Backend = "gloo"
		if cuda {
			o.Backend = "nccl"
		}
	}
	if o.Backend == "nccl" && !HasNCCL() {
		return fmt.Errorf("dist.backend: nccl, but the c10d library was built without NCCL (a CPU libtorch, or nccl.h not found when make setup ran: set NCCL_INCLUDE and run it again)")
	}
	o.Timeout, _ = time.ParseDuration(c.Timeout)
	return nil
}
