package dist

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Options describe one rank of a job: where the job's TCPStore is (rank
// 0 hosts it), which rank this is, and how long to wait.
type Options struct {
	Backend   string // "gloo" (CPU) or "nccl" (CUDA)
	Addr      string // rank 0's host (MASTER_ADDR)
	Port      int    // the store's port (MASTER_PORT)
	Rank      int    // 0 … World−1 over the whole job
	World     int    // number of ranks in the job
	LocalRank int    // rank on this host: the CUDA device to use
	Timeout   time.Duration
	Source    string // where the rank came from: "torchrun", "slurm", "-nproc"
}

func (o Options) validate() error {
	switch {
	case o.World < 1:
		return fmt.Errorf("dist: world size %d: want at least 1", o.World)
	case o.Rank < 0 || o.Rank >= o.World:
		return fmt.Errorf("dist: rank %d outside a world of %d", o.Rank, o.World)
	case o.Addr == "":
		return fmt.Errorf("dist: no address for rank 0's store (MASTER_ADDR)")
	case o.Port <= 0 || o.Port > 65535:
		return fmt.Errorf("dist: port %d out of range (MASTER_PORT)", o.Port)
	case o.Backend != "gloo" && o.Backend != "nccl":
		return fmt.Errorf("dist: backend %q: want gloo or nccl", o.Backend)
	case o.Timeout <= 0:
		return fmt.Errorf("dist: timeout %v: want a positive duration", o.Timeout)
	}
	return nil
}

// DefaultPort is torchrun's default MASTER_PORT.
const DefaultPort = 29500

// FromEnv reads the launcher's environment: torchrun's (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or, failing that, Slurm's inside
// srun (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; rank 0's host is
// MASTER_ADDR or the first host of SLURM_JOB_NODELIST). ok is false when
// neither names more than one rank: a plain single-process run. Backend
// and Timeout are left for the caller.
func FromEnv(getenv func(string) string) (o Options, ok bool, err error) {
	keys := [3]string{"RANK", "WORLD_SIZE", "LOCAL_RANK"}
	o.Source = "torchrun"
	if getenv("WORLD_SIZE") == "" && getenv("SLURM_PROCID") != "" {
		keys = [3]string{"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}
		o.Source = "slurm"
	}
	if getenv(keys[1]) == "" {
		return Options{}, false, nil
	}
	ints := [3]int{}
	for i, k := range keys {
		v := getenv(k)
		if v == "" && k == keys[2] {
			v = "0"
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return Options{}, false, fmt.Errorf("dist: environment %s=%q: want a non-negative integer", k, v)
		}
		ints[i] = n
	}
	o.Rank, o.World, o.LocalRank = ints[0], ints[1], ints[2]
	if o.World <= 1 {
		return Options{}, false, nil
	}
	o.Addr = getenv("MASTER_ADDR")
	if o.Addr == "" && o.Source == "slurm" {
		if o.Addr, err = FirstHost(getenv("SLURM_JOB_NODELIST")); err != nil {
			return Options{}, false, err
		}
	}
	if o.Addr == "" {
		return Options{}, false, fmt.Errorf("dist: %s=%d but MASTER_ADDR is not set", keys[1], o.World)
	}
	o.Port = DefaultPort
	if p := getenv("MASTER_PORT"); p != "" {
		if o.Port, err = strconv.Atoi(p); err != nil || o.Port <= 0 || o.Port > 65535 {
			return Options{}, false, fmt.Errorf("dist: environment MASTER_PORT=%q: want a port number", p)
		}
	}
	if o.Rank >= o.World {
		return Options{}, false, fmt.Errorf("dist: environment %s=%d is outside %s=%d", keys[0], o.Rank, keys[1], o.World)
	}
	return o, true, nil
}

// FirstHost is the first host of a Slurm node list, in Slurm's compressed
// form: "gpu[07-09,12],cpu3" → "gpu07", "rack[1-2]-n[4,6]" → "rack1-n4".
func FirstHost(list string) (string, error) {
	bad := fmt.Errorf("dist: SLURM_JOB_NODELIST=%q: not a Slurm node list", list)
	depth, end := 0, len(list)
	for i, c := range list { // the first entry ends at a comma outside brackets
		if c == '[' {
			depth++
		} else if c == ']' {
			depth--
		} else if c == ',' && depth == 0 {
			end = i
			break
		}
		if depth < 0 || depth > 1 {
			return "", bad
		}
	}
	entry := list[:end]
	var b strings.Builder
	for entry != "" {
		open := strings.IndexByte(entry, '[')
		if open < 0 {
			b.WriteString(entry)
			break
		}
		closing := strings.IndexByte(entry, ']')
		if closing < open {
			return "", bad
		}
		b.WriteString(entry[:open])
		first, _, _ := strings.Cut(entry[open+1:closing], ",")
		first, _, _ = strings.Cut(first, "-")
		if first == "" {
			return "", bad
		}
		b.WriteString(first)
		entry = entry[closing+1:]
	}
	if b.Len() == 0 {
		return "", bad
	}
	return b.String(), nil
}
