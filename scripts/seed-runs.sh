#!/usr/bin/env bash
# The seed files at the seeds' settings on the datasets this machine has, one after another;
# each run folder resumes where it stopped, so re-running this script continues the queue.
#   bash scripts/seed-runs.sh [NAME ...]     (default: every run below, in order)
# Each finished run's tables and figures go to docs/studies/NAME/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
sp=".venv/bin/saddlepoint"

run() {  # run NAME FILE [study-run options...]
    local name=$1 file=$2
    shift 2
    echo "== $name: $sp study run $file --out runs/$name $* ($(date -u +%H:%M:%S))"
    "$sp" --quiet study run "$file" --out "runs/$name" "$@"
    "$sp" report "runs/$name" --markdown "docs/studies/$name"
}

reuse_original() {  # reuse_original FROM TO: 002 §3's original network is 002 §2's
    mkdir -p "runs/$2/models"
    [ -f "runs/$2/models/classifier.safetensors" ] || cp "runs/$1/models/classifier.safetensors" "runs/$2/models/"
}

declare -A RUNS=(
    [seed003-mnist]="run seed003-mnist experiments/seed003-deepfool-mnist.yaml"
    [seed002-s2-mnist]="run seed002-s2-mnist experiments/seed002-s2-fast-gradient-cifar10.yaml --dataset mnist"
    [seed002-s3-mnist]="reuse_original seed002-s2-mnist seed002-s3-mnist; run seed002-s3-mnist experiments/seed002-s3-adversarial-training-cifar10.yaml --dataset mnist"
)
ORDER=(seed003-mnist seed002-s2-mnist seed002-s3-mnist)

for name in "${@:-${ORDER[@]}}"; do
    eval "${RUNS[$name]}"
done
