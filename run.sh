#!/usr/bin/env bash
# The full speedrun on one node of 8 GPUs (NPROC=N for another count). Fetch the data first:
# python data/cached_fineweb10B.py 8
set -euo pipefail
cd "$(dirname "$0")"
nproc=${NPROC:-8}
for arg in "$@"; do
    if [[ $arg == --help || $arg == -h ]]; then exec python train_gpt.py --help; fi  # once, not once per rank
done
# one process checks the constants, the GPUs and the shards first: a bad one is one line, not one per rank and a
# traceback
WORLD_SIZE=$nproc python train_gpt.py --check "$@"
torchrun --standalone --nproc_per_node="$nproc" train_gpt.py "$@"
