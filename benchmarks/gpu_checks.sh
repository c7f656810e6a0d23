#!/usr/bin/env bash
# Every GPU check of this project in one run, for a session that is lent a GPU machine (about 15 min):
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
# Each step has its own time limit, so one slow step cannot eat the others; results and logs go to
# OUT_DIR (default $OUT, else ./gpu-checks). Nothing here needs network or user weights.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-checks}}"
mkdir -p "$out"
step() {  # step NAME SECONDS COMMAND...
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo "   rc=$? in $((SECONDS - t0))s; log $out/$name.log"
  tail -n 25 "$out/$name.log"
}
step device 60 python -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))"
# sface_torch on CUDA: same embeddings as ONNX Runtime on CPU, fp32 and bf16 (cosine), and throughput.
step sface_cuda 120 python - <<'PY'
import time, numpy as np, fiqa_bench as fb
x = np.random.default_rng(0).integers(0, 256, (256, 112, 112, 3), dtype=np.uint8)
ref = fb.get_fr_model("sface", device="cpu").embed(x[:32])
for precision in ("fp32", "bf16"):
    m = fb.get_fr_model("sface_torch", device="cuda", precision=precision)
    e = m.embed(x[:32])
    cos = (e * ref).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(ref, axis=1)
    m.embed(x); t0 = time.perf_counter(); m.embed(x); dt = time.perf_counter() - t0
    print(f"sface_torch cuda {precision}: min cosine to ONNX/CPU {cos.min():.6f}; {len(x) / dt:.0f} img/s (batch {m.batch_size})")
PY
step fr_models 240 python benchmarks/bench_fr_models.py --n 16 --batch 16 --no-write
step training 240 python benchmarks/bench_training.py --steps 20 --warmup 5 --json "$out/training.json"
step scoring 180 python benchmarks/bench_scoring.py --n 512 --n-large 256 --batch-size 128 --models sface_torch,arcface_r50 --device cuda
# torchrun on one GPU with NCCL: the trainer's distributed path end to end (synthetic data, a few steps).
step torchrun_nccl 180 torchrun --standalone --nproc_per_node 1 -m fiqa_bench.training.train --config crfiqa_s \
  --data synthetic:4096:100 --out "$out/train_run" --max-steps 20 --batch-size 64 --precision bf16 --device cuda \
  --verify-every 0 --log-every 5
# Training, issue 17 (UNVERIFIED on a GPU so far: written on a CPU-only machine).
# 1) CR-FIQA(S) config: 200 steps of iResNet50 + qs at batch 128, bf16, on synthetic data (10,572 classes
#    as CASIA-WebFace), timed by the trainer's own samples/s log.
step crfiqa_s_200 300 python -m fiqa_bench.training.train --config crfiqa_s --data synthetic:25600:10572 \
  --out "$out/crfiqa_s_200" --max-steps 200 --batch-size 128 --precision bf16 --device cuda --workers 8 \
  --verify-every 0 --checkpoint-every 0 --log-every 20 --quiet
# 2) the crfiqa_sface fine-tuning (frozen + full) on CUDA in bf16: throughput and peak memory of both modes
#    on synthetic inputs, then, when the LFW folders are present beside the checkout, the whole
#    benchmarks/finetune_lfw.sh sequence (pack, frozen, 200 full steps, run + compare on lfw).
step finetune_bench 180 python benchmarks/bench_training.py --finetune --device cuda --precisions bf16 \
  --batch 128 --classes 705 --steps 20 --warmup 5
if [ -d ../shared/data/lfw_train ]; then
  DEVICE=cuda PRECISION=bf16 FULL_STEPS=200 BOOTSTRAP=200 step finetune_lfw 600 \
    bash benchmarks/finetune_lfw.sh "$out/finetune_lfw"
else
  echo "== finetune_lfw skipped: ../shared/data/lfw_train not on this machine"
fi
echo "done: $out"
