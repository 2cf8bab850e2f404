#!/bin/bash
# call 1 (one H200): the head kernels' CUDA tests; the head's forward and backward in this tree and in
# 2748b1d (.devdata/head); the baseline's step against 2748b1d at one micro-step per step on the short-track
# schedule, steps 21-150
cd "$(dirname "$0")/../.."  # the repository root; the corpus and the older tree travel in the ignored .devdata/
start=$(date +%s)
left() { echo $(( 570 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 &
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_step.py -k "head" > /tmp/res/cuda_tests.txt 2>&1
tail -3 /tmp/res/cuda_tests.txt
wait
echo "tokenized and tested at $(( $(date +%s) - start )) s"
parts=records/2026-12-01_head_kernels/head_parts.py
timeout 100 python3 $parts --tree .devdata/head --save /tmp/head_old.pt > /tmp/res/head_parts_old.txt 2>&1
timeout 100 python3 $parts --save /tmp/head_new.pt > /tmp/res/head_parts_new.txt 2>&1
python3 $parts --compare /tmp/head_old.pt /tmp/head_new.pt > /tmp/res/head_parts_compare.txt 2>&1
echo "head parts done at $(( $(date +%s) - start )) s"
tail -1 /tmp/res/head_parts_old.txt /tmp/res/head_parts_new.txt; cat /tmp/res/head_parts_compare.txt
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 150 --profile_steps 2 \
  --variants baseline --against .devdata/head --timeout 250 --log_dir /tmp/bench1 \
  --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res/bench1.txt 2>&1
echo "bench done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/bench1_logs.tgz -C /tmp bench1 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res/bench1.txt | cut -c1-220
