#!/usr/bin/env bash
# The full speedrun on one node of 8 GPUs. Fetch the data first: python data/cached_fineweb10B.py 8
set -euo pipefail
cd "$(dirname "$0")"
torchrun --standalone --nproc_per_node=8 train_gpt.py "$@"
