#!/bin/bash
# call 1 (one H200): the two step parts against 47d35f1 (.devdata/head), then the baseline's step against
# ac0abcf (.devdata/ac0abcf) at one micro-step per step on the short-track schedule, steps 21-150
cd "$(dirname "$0")/../.."  # the repository root; the corpus and the older trees travel in the ignored .devdata/
start=$(date +%s)
left() { echo $(( 570 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
echo "tokenized at $(( $(date +%s) - start )) s"
timeout 150 python3 records/2026-12-01_fused_head_muon/step_parts.py --old .devdata/head > /tmp/res/step_parts.txt 2>&1
echo "step parts done at $(( $(date +%s) - start )) s"
tail -12 /tmp/res/step_parts.txt
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 150 --profile_steps 2 \
  --variants baseline --against .devdata/ac0abcf --timeout 280 --log_dir /tmp/bench1 \
  --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res/bench1.txt 2>&1
echo "bench done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/bench1_logs.tgz -C /tmp bench1 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res/bench1.txt | cut -c1-220
