package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/dlmlab/difflm/data"
	"github.com/dlmlab/difflm/dist"
	"github.com/dlmlab/difflm/eval"
	"github.com/dlmlab/difflm/torchx"
	"github.com/dlmlab/difflm/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// job is this process's place in a data-parallel job; nil (one process)
// answers as rank 0 of 1.
type job struct {
	group     *dist.Group
	opts      dist.Options
	splitEval bool         // eval.seeding per-batch: the bounds are split over the ranks
	decided   bool         // decide has been called
	dev       gotch.Device // where this rank's collectives put their tensors: the GPU under NCCL, else the CPU
}

// decide is rank 0's word to the other ranks, once per job and before any
// other collective: go on (true) or stop (false: the run is finished and
// there is nothing to do, or rank 0 failed before it could start). Without
// it a rank whose rank 0 returned early would wait in its first collective
// until dist.timeout. Rank 0 sends goOn and returns it; the others return
// rank 0's word. A second call, and one process, return goOn.
func (j *job) decide(goOn bool) (bool, error) {
	if j == nil || j.decided {
		return goOn, nil
	}
	j.decided = true
	v := int64(0)
	if goOn {
		v = 1
	}
	x := ts.MustOfSlice([]int64{v}).MustTo(j.dev, true)
	defer x.MustDrop()
	if err := j.group.Broadcast([]*ts.Tensor{x}, 0); err != nil {
		return false, fmt.Errorf("rank %d: rank 0's word to start: %w", j.rank(), err)
	}
	host := x.MustTo(gotch.CPU, false) // gotch copies values out of host memory only
	defer host.MustDrop()
	return host.Int64Values()[0] == 1, nil
}

func (j *job) rank() int {
	if j == nil {
		return 0
	}
	return j.group.Rank()
}

// ranks is the group to split evaluations over: nil for one process,
// and under eval.seeding stream, whose passes cannot be split (rank 0
// then evaluates alone, with the numbers one process gives).
func (j *job) ranks() eval.Ranks {
	if j == nil || !j.splitEval {
		return nil
	}
	return j.group
}

func (j *job) close() {
	if j != nil {
		j.group.Close()
	}
}

// joinJob joins the data-parallel job the environment describes (torchrun's
// or Slurm's variables, which -nproc sets for its children too) and returns
// nil when it describes none. It adapts cfg to the rank: on CUDA rank r
// uses cuda:LOCAL_RANK, `threads: auto` is divided among the ranks on this
// host, and ranks other than 0 log only warnings.
func joinJob(cfg *Config) (*job, error) {
	o, ok, err := dist.FromEnv(os.Getenv)
	if err != nil || !ok {
		return nil, err
	}
	cuda := false
	switch {
	case cfg.Device == "cuda" || (cfg.Device == "auto" && gotch.CUDA.IsAvailable()):
		cfg.Device, cuda = fmt.Sprintf("cuda:%d", o.LocalRank), true
	case cfg.Device != "cpu" && cfg.Device != "auto":
		return nil, fmt.Errorf("device: %s names one GPU, but this is rank %d of a %d-rank job: use device: cuda (each rank takes cuda:LOCAL_RANK)", cfg.Device, o.Rank, o.World)
	}
	dev, err := torchx.ParseDevice(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("rank %d (LOCAL_RANK %d): device: %w", o.Rank, o.LocalRank, err)
	}
	if err := cfg.Dist.Apply(&o, cuda); err != nil {
		return nil, err
	}
	if o.Backend != "nccl" {
		dev = gotch.CPU
	}
	cfg.Train.Threads = cfg.threadCount(localWorld())
	cfg.Train.Device = cfg.Device
	level := slog.LevelInfo
	if o.Rank != 0 {
		level = slog.LevelWarn
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("rank", o.Rank))
	slog.Info("dist: joining", "world", o.World, "from", o.Source, "store", fmt.Sprintf("%s:%d", o.Addr, o.Port),
		"backend", o.Backend, "device", cfg.Device, "threads", cfg.Train.Threads)
	split := cfg.Eval.Seeding == eval.SeedPerBatch
	if !split {
		slog.Info("dist: eval.seeding is stream, so rank 0 evaluates alone after training (per-batch splits the bounds over the ranks)")
	}
	g, err := dist.New(o)
	if err != nil {
		return nil, err
	}
	return &job{group: g, opts: o, splitEval: split, dev: dev}, nil
}

// localWorld is the number of ranks on this host: torchrun's
// LOCAL_WORLD_SIZE (-nproc sets it), Slurm's SLURM_NTASKS_PER_NODE, else 1.
func localWorld() int {
	for _, k := range []string{"LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
	}
	return 1
}

// followRank is the whole life of a rank other than 0: train its share
// of every batch in step with rank 0, then take its part of the
// evaluation's bounds (with the EMA weights, as rank 0), and leave the
// rest — the results database, checkpoints, the other evaluations,
// samples, plots — to rank 0.
func followRank(ctx context.Context, cfg *Config, m *method, corpus *data.Corpus, j *job, stages stage) error {
	tcfg := cfg.Train
	if stages&stageTrain == 0 {
		tcfg.Resume = "auto"
	}
	trainer, err := train.New(tcfg, m.vs, runDir(cfg), map[string]string{})
	if err != nil {
		return err
	}
	if stages&stageTrain != 0 {
		if err := trainer.Distribute(j.group); err != nil {
			return err
		}
		batches, err := corpus.TrainBatches(cfg.Train.BatchSize)
		if err != nil {
			return err
		}
		if err := trainer.Run(ctx, trainBatches{batches}, m.stepFunc(), nil, nil); err != nil {
			return err
		}
	}
	if stages&stageEval == 0 || j.ranks() == nil {
		return nil
	}
	return trainer.WithEMA(func() error { return m.evaluate(ctx, cfg, corpus, nil, 0, j.ranks()) })
}
