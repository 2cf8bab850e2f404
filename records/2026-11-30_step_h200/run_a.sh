#!/usr/bin/env bash
# Device call A (one H200): the step of this commit against ac0abcf (a copy in .old/), one micro-step per
# step on the short-track schedule, and the hashed features' cost. Needs .devdata/wiki2015_subset.jsonl.xz.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
    --val_tokens 524288 --workers 16 > "$OUT/tokenize.txt" 2>&1
python3 records/2026-11-30_step_h200/check_partial_block.py 2>&1 | tail -4
ST="--extra=--num_iterations=400 --muon_momentum_warmup_steps=70"
python3 .old/records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 150 --profile_steps 2 \
    --variants baseline "$ST" --log_dir /tmp/logs/old1 --timeout 400 2>&1 | tail -3
python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 150 --profile_steps 2 \
    --variants baseline,ngram,cross,self_w16_pool4 "$ST" --log_dir /tmp/logs/new1 --timeout 300 2>&1 | tail -7
tar -czf "$OUT/logs.tar.gz" -C /tmp logs
