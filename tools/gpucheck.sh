#!/usr/bin/env bash
# The GPU check (issue 15): everything the CUDA path needs to show, in one
# call of under ten minutes, on a machine that has a CUDA PyTorch wheel,
# g++ and Python but no Go toolchain and no network.
#
# Here (with Go):   make gpucheck-bundle        # → .gpucheck/bundle.tar.gz (binaries + a small corpus)
# There:            tools/gpucheck.sh           # from the repository root; OUT=folder for the report
#
# It
#   1. rebuilds the gotch bindings and the c10d shim against the wheel's
#      libtorch (bin/torchprep -lib-only: g++ only);
#   2. runs the model-parity test against PyTorch on CUDA (the test binary
#      of models/peer_test.go: the same weights and inputs through both, the
#      logits to 1e-3);
#   3. trains owt-small's network (MDLM small, 169M parameters, GPT-2
#      vocabulary, L = 1024, fused attention) for a few bf16 steps on War and
#      Peace, with the largest micro-batch of 64, 32, 16, 8 that fits;
#   4. samples from it, and
#   5. prints tokens/s, MFU against the card's bf16 peak and the peak GPU
#      memory, and writes them to $OUT/gpucheck.txt.
#
# GPUCHECK_DEVICE=cpu runs the same steps on the CPU with the tiny preset
# (fp32, math attention, L = 128) — what CI-less machines can check of the
# script itself; PEAK_TFLOPS overrides the bf16 peak looked up by card name.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
B=.gpucheck
OUT=${OUT:-$B/out}
PY=${PYTHON:-python3}
DEVICE=${GPUCHECK_DEVICE:-cuda}
STEPS=${GPUCHECK_STEPS:-$([ "$DEVICE" = cpu ] && echo 3 || echo 12)}
mkdir -p "$OUT"
log() { echo "gpucheck: $*" | tee -a "$OUT/gpucheck.txt" >&2; }
: >"$OUT/gpucheck.txt"
t0=$(date +%s)

[ -f $B/bundle.tar.gz ] || { echo "gpucheck: $B/bundle.tar.gz is missing: run 'make gpucheck-bundle' on a machine with Go and carry $B here" >&2; exit 2; }
tar -xzf $B/bundle.tar.gz -C $B
for f in bin/experiments bin/torchprep bin/models-peer.test; do
	[ -x "$B/$f" ] || { echo "gpucheck: $B/$f missing from the bundle" >&2; exit 2; }
done

# 0. The machine.
if [ "$DEVICE" = cpu ]; then
	wheel=${TORCH_WHEEL:-}
	log "device cpu (dry run of the script)"
else
	command -v nvidia-smi >/dev/null || { echo "gpucheck: no nvidia-smi: not a GPU machine (GPUCHECK_DEVICE=cpu for a dry run)" >&2; exit 2; }
	wheel=${TORCH_WHEEL:-$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')}
	"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpucheck: the wheel sees no CUDA device")'
	log "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
	log "torch $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)') at $wheel"
fi

# 1. Bindings for this libtorch.
s=$(date +%s)
if [ -n "$wheel" ]; then
	TORCH_WHEEL=$wheel $B/bin/torchprep -lib-only 2>&1 | tail -n 5 | tee -a "$OUT/gpucheck.txt" >&2
	export LD_LIBRARY_PATH=$here/.torch/lib:$wheel/lib:${LD_LIBRARY_PATH:-}
else
	export LD_LIBRARY_PATH=$here/.torch/lib:${LD_LIBRARY_PATH:-}
fi
log "bindings: $(( $(date +%s) - s )) s"

# 2. Parity with PyTorch on the device.
s=$(date +%s)
peer_py=$PY
[ "$DEVICE" = cpu ] && peer_py=${PYTHON:-/usr/bin/python3}
if (cd models && PEER_DEVICE=$DEVICE PEER_PYTHON=$peer_py "../$B/bin/models-peer.test" -test.run '^TestMatchesPyTorchPeer$' -test.v) >"$OUT/parity.log" 2>&1; then
	log "parity: $(grep -c 'agree within' "$OUT/parity.log") networks agree with PyTorch on $DEVICE ($(( $(date +%s) - s )) s)"
	grep 'agree within' "$OUT/parity.log" | sed 's/^ *peer_test.go:[0-9]*: /  /' | tee -a "$OUT/gpucheck.txt" >&2
else
	log "parity: FAILED (see $OUT/parity.log)"
	tail -n 20 "$OUT/parity.log" >&2
	exit 1
fi

# 3. bf16 training of owt-small's network on a local corpus.
export DATA_DIR=$here/$B/data
run=$B/run
common=(-cfg configs/owt-small.yaml -db "$run/results.db"
	-set "data.train=[warpeace/warpeace_input.txt]" -set data.format=text -set data.doc_split=paragraph
	-set "data.split=[0.98,0.02,0]" -set data.cache_dir="$run/cache" -set eval.lambada= -set out_dir="$run")
if [ "$DEVICE" = cpu ]; then
	common+=(-set device=cpu -set model.preset=tiny -set model.attention=math -set data.seq_len=128 -set train.precision=fp32)
	batches=(8 4)
	layers=4 width=128 seqlen=128 # the tiny preset
	nsample=(-n 2 -steps 8)
else
	common+=(-set device="$DEVICE" -set train.precision=bf16)
	batches=(64 32 16 8)
	layers=12 width=768 seqlen=1024 # owt-small: the small preset
	nsample=(-n 8 -steps 64)
fi
mem_poll() { # the largest memory.used (MiB) while $1 runs
	[ "$DEVICE" = cpu ] && { "$@"; return; }
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/mem.csv" &
	local poll=$!
	local rc=0
	"$@" || rc=$?
	kill $poll 2>/dev/null || true
	wait $poll 2>/dev/null || true
	return $rc
}
s=$(date +%s)
mb=""
for b in "${batches[@]}"; do
	rm -rf "$run"
	if mem_poll $B/bin/experiments "${common[@]}" -mode train -run-name "gpucheck/mb$b" \
		-set train.steps="$STEPS" -set train.batch_size="$b" -set train.micro_batch="$b" -set train.warmup=2 \
		-set train.log_every=1 -set train.eval_every=0 -set train.ckpt_every="$STEPS" >"$OUT/train.log" 2>&1; then
		mb=$b
		break
	fi
	if grep -qi 'out of memory' "$OUT/train.log"; then
		log "micro-batch $b: out of memory"
		continue
	fi
	log "training failed at micro-batch $b (see $OUT/train.log)"
	tail -n 20 "$OUT/train.log" >&2
	exit 1
done
[ -n "$mb" ] || { log "no micro-batch of ${batches[*]} fits"; exit 1; }
train_s=$(( $(date +%s) - s ))

# 4. Sampling (the cached ancestral sampler; on the GPU 8 sequences of 64 steps).
s=$(date +%s)
$B/bin/experiments "${common[@]}" -mode sample -run-name "gpucheck/mb$mb" "${nsample[@]}" >"$OUT/sample.log" 2>&1 ||
	{ log "sampling failed (see $OUT/sample.log)"; tail -n 20 "$OUT/sample.log" >&2; exit 1; }
sample_s=$(( $(date +%s) - s ))

# 5. The figures.
params=$(grep -o 'params=[0-9]*' "$OUT/train.log" | head -1 | cut -d= -f2)
toks=$(grep -o '[0-9.]* tok/s' "$OUT/train.log" | tail -1 | cut -d' ' -f1)
peak_mib=$( [ -f "$OUT/mem.csv" ] && sort -n "$OUT/mem.csv" | tail -1 || echo "?")
gpu=$( [ "$DEVICE" = cpu ] && echo cpu || nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
"$PY" - "$gpu" "${params:-0}" "${toks:-0}" "${layers:-0}" "${width:-0}" "${seqlen:-0}" "${PEAK_TFLOPS:-}" <<'EOF' | tee -a "$OUT/gpucheck.txt" >&2
import sys
gpu, params, toks, layers, width, L, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
# Dense bf16 peaks (no sparsity), TFLOP/s, from the vendors' data sheets.
peaks = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "A10": 125, "L4": 121, "V100": 125, "RTX 4090": 165}
tf = float(peak) if peak else next((v for k, v in peaks.items() if k in gpu), 0)
# The bench's count (bench.FLOPsPerToken): 6 per non-embedding parameter plus attention's 12·layers·L·width.
embed = 50258 * width
flops = 6 * (params - embed) + 12 * layers * L * width
mfu = toks * flops / (tf * 1e12) if tf else float("nan")
print(f"training: {toks:,.0f} tokens/s, {flops / 1e9:.2f} GFLOP/token, MFU {100 * mfu:.1f}% of {tf:g} TFLOP/s bf16 ({gpu})")
EOF
log "train ${STEPS} steps at micro-batch $mb: ${train_s} s; sampling: ${sample_s} s; peak GPU memory: ${peak_mib} MiB"
log "$(grep -a -m1 '^sampler ' "$OUT/sample.log" || echo 'sampling: no summary line')"
log "total $(( $(date +%s) - t0 )) s; logs in $OUT"
