#!/usr/bin/env bash
# Ablation of paper table 1 on our data (issue 6), on the default model's recipe.
#
# Three arms, trained the same way: the default config (EfficientNet-Lite0 OS 16,
# 320 px, same data, seed, sample order and learning-rate schedule), each stopped after
# the same number of epochs (STOP, default 2 = 300 steps of batch 4 = 1200 samples):
#   base      PSP head (DEXTR)  + Gaussian heat map (DEXTR)
#   +DA       DANet head        + Gaussian heat map
#   +SFG      DANet head        + SFG  = the default run's own epoch_00STOP.pt
# then each is evaluated on DAVIS-345 (4 and 3 extreme points, 1-3 corrective clicks).
#
#   bash experiments/ablation_lite0.sh            # after (or beside) the default run
set -euo pipefail
STOP=${STOP:-2}
CONFIG=training/configs/default_lite0.yaml
OUT=${OUT:-runs/ablation}
DATA=../shared/data/dev/davis345

train_arm() {  # name head guidance
  fairs-train train --config "$CONFIG" --device cpu --stop-after-epoch "$STOP" \
    --set model.head="$2" --set model.guidance="$3" --set output_dir="$OUT/$1" --set progress=false
}
train_arm base_psp_gaussian psp gaussian
train_arm danet_gaussian danet gaussian

for arm in base_psp_gaussian danet_gaussian; do
  fairs-train evaluate --checkpoint "$OUT/$arm/last.pt" --data "$DATA" --max-clicks 7 --out "$OUT/eval/$arm"
done
fairs-train evaluate --checkpoint "runs/default_lite0/epoch_$(printf %03d "$STOP").pt" --data "$DATA" --max-clicks 7 \
  --out "$OUT/eval/danet_sfg"
