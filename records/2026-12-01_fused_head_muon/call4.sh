#!/bin/bash
# call 4 (the warm H200 of call 3, shards and caches in place): 8 micro-steps per step against ac0abcf, then
# one rank of 8 GPUs (bench_ranks) for the baseline and cross-attention as far as the time allows
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( 420 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res4
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 24 --profile_steps 1 \
  --variants baseline --against .devdata/ac0abcf --against_data /tmp/wiki1 --timeout 200 \
  --log_dir /tmp/bench4 > /tmp/res4/bench4_micro8.txt 2>&1
echo "8 micro-steps done at $(( $(date +%s) - start )) s"
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 --timeout 90 \
  --variants baseline,cross,self_w1 --log_dir /tmp/bench4r > /tmp/res4/bench4_ranks8.txt 2>&1
echo "ranks-8 done at $(( $(date +%s) - start )) s"
cp /tmp/res4/*.txt $OUT/
tar czf $OUT/logs4.tgz -C /tmp bench4 bench4r 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res4/*.txt | cut -c1-220
