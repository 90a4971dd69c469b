#!/bin/bash
# Submits sweep e2e: one array job per wave, each after the one before.
set -euo pipefail
cd "$(dirname "$0")"
job0=$(sbatch --parsable wave0.sbatch)
echo "wave 0: job $job0 (1 runs)"
job1=$(sbatch --parsable --dependency=afterok:$job0 wave1.sbatch)
echo "wave 1: job $job1 (1 runs)"
echo "when they have finished: $BIN -cfg $OUT/sweep.yaml -mode merge"
