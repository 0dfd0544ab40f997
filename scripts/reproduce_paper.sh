#!/usr/bin/env bash
# The paper-scale study on one GPU, in one command: both zoos at the paper's size (1,000 runs x 20k steps each), the six
# encoders and the weight-blind emulator at the paper's size for 100k steps with 5 seeds (WORKERS runs share the GPU),
# downstream evaluation, supervised baselines, and the report (OUT/report.md).
#
#   bash scripts/reproduce_paper.sh [OUT]            # default OUT: study-paper
#   WORKERS=8 bash scripts/reproduce_paper.sh OUT    # more concurrent training runs on a large GPU
#
# It resumes where it stopped (stage by stage, run by run): run the same command again after an interruption.
# Check first, in minutes, that everything runs with these hyper-parameters and see the extrapolated time:
#   rnnws reproduce --preset paper --device cuda --step-scale 0.0002 --zoo-runs 24 --out study-check
set -euo pipefail
OUT="${1:-study-paper}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script is for a GPU machine')"
exec rnnws reproduce --preset paper --device cuda --workers "${WORKERS:-4}" --out "$OUT"
