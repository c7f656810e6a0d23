#!/usr/bin/env bash
# CR-FIQA fine-tuned from SFace on ../shared/data/lfw_train, evaluated on ../shared/data/lfw (3 folds).
# One command sequence from the identity-per-folder photos to the table in benchmarks/RESULTS.md:
#
#   bash benchmarks/finetune_lfw.sh [WORK_DIR]          # default WORK_DIR: ./finetune-lfw (not committed)
#
# Environment: DATA (default ../shared/data), DEVICE (cpu | cuda; default cpu), PRECISION (fp32 | bf16;
# default fp32), FULL_STEPS / FULL_BATCH (full fine-tuning: step cap and batch, default 40 x 16: a
# token run sized for a shared 2-core CPU; raise both on a GPU), BOOTSTRAP (default 1000),
# FIQA (default .venv/bin/fiqa-bench if present, else fiqa-bench), CACHE (embedding/quality cache of the
# evaluation, default WORK_DIR/cache). On a crowded CPU, OMP_NUM_THREADS=1 is several times faster
# (measured here: 2 threads on an oversubscribed 2-core machine spent most of their time waiting).
# Steps (each skipped when its output exists, so an interrupted run resumes):
#   1. pack --align: YuNet alignment of lfw_train (705 identities) -> train.rec/train.idx (as MS1MV2)
#   2. frozen backbone: qs + ArcFace centres on SFace embeddings computed once (config crfiqa_sface)
#   3. full fine-tuning: starts from step 2's state (qs + centres), backbone lr x0.1, FULL_STEPS steps
#   4. fiqa-bench run on lfw with sface and dlib_resnet: both checkpoints beside random, face_norm and
#      serfiq@sface_torch, FMR 1e-2, BOOTSTRAP resamples
#   5. fiqa-bench compare: each checkpoint against random (paired bootstrap), per FR model and protocol
#   6. evidence: learning curve, CCS/NNCCS/target/qs distributions, qs vs comparison-score correlation
# No choice is made on the evaluation folds: every setting is fixed in the config before step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-finetune-lfw}"
data="${DATA:-../shared/data}"
device="${DEVICE:-cpu}"
precision="${PRECISION:-fp32}"
full_steps="${FULL_STEPS:-40}"
full_batch="${FULL_BATCH:-16}"
bootstrap="${BOOTSTRAP:-1000}"
fiqa="${FIQA:-$( [ -x .venv/bin/fiqa-bench ] && echo .venv/bin/fiqa-bench || echo fiqa-bench)}"
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
mkdir -p "$work"
latest() { ls "$1"/*backbone.pth 2>/dev/null | sed 's#.*/##; s/backbone.pth//' | sort -n | tail -1; }

# 1. align + pack
[ -f "$work/lfw_train_rec/train.idx" ] || "$fiqa" pack --align "$data/lfw_train" "$work/lfw_train_rec" --quiet

# 2. frozen backbone
if [ -z "$(latest "$work/frozen")" ]; then
  "$fiqa" train --config crfiqa_sface --data "$work/lfw_train_rec" --out "$work/frozen" \
    --device "$device" --precision "$precision" --quiet
fi
frozen_step="$(latest "$work/frozen")"
frozen="$work/frozen/${frozen_step}backbone.pth"

# 3. full fine-tuning (short: FULL_STEPS steps of FULL_BATCH images)
if [ -z "$(latest "$work/full")" ]; then
  "$fiqa" train --config crfiqa_sface --data "$work/lfw_train_rec" --out "$work/full" \
    --set freeze_backbone=false --set "init_from=\"$work/frozen/${frozen_step}state.pt\"" \
    --max-steps "$full_steps" --batch-size "$full_batch" --set checkpoint_every=20 --device "$device" --precision "$precision" --quiet
fi
full="$work/full/$(latest "$work/full")backbone.pth"
ln -sfn "$(realpath "$frozen")" "$work/crfiqa_sface_frozen.pth"
ln -sfn "$(realpath "${frozen%.pth}.json")" "$work/crfiqa_sface_frozen.json"
ln -sfn "$(realpath "$full")" "$work/crfiqa_sface_full.pth"
ln -sfn "$(realpath "${full%.pth}.json")" "$work/crfiqa_sface_full.json"

# 4. evaluation on the LFW folds (identity-disjoint from lfw_train)
methods="random,face_norm,serfiq@sface_torch,crfiqa:$work/crfiqa_sface_frozen.pth,crfiqa:$work/crfiqa_sface_full.pth"
"$fiqa" run --methods "$methods" --models sface,dlib_resnet --datasets lfw --data-root "$data" \
  --fmr 1e-2 --bootstrap "$bootstrap" --device "$device" --cache-dir "${CACHE:-$work/cache}" --out "$work/eval" --quiet

# 5. paired tests against random
for m in "crfiqa:$work/crfiqa_sface_frozen.pth" "crfiqa:$work/crfiqa_sface_full.pth" face_norm serfiq@sface_torch; do
  for fr in sface dlib_resnet; do
    for proto in ERC EDC; do
      echo "== $m vs random, $fr, $proto"
      "$fiqa" compare "$m" random --results "$work/eval" --fr-model "$fr" --protocol "$proto" --fmr 1e-2 --n "$bootstrap" || true
    done
  done
done 2>&1 | tee "$work/compare.txt"

# 6. evidence
"$python" benchmarks/finetune_lfw_evidence.py "$work" --data "$data" | tee "$work/evidence.md"
