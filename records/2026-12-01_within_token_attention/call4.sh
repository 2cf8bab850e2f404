#!/bin/bash
# call 4 (the warm H200 of call 3, caches and shards in place): one rank of 8 GPUs
cd "$(dirname "$0")/../.."  # the repository root; the corpus travels in the ignored .devdata/
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
timeout 165 python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 --timeout 80 \
  --variants baseline,self_w1_l2,self_w1 --log_dir /tmp/bench_r8 > /tmp/res/bench_ranks8.txt 2>&1
echo "ranks8 done at $(( $(date +%s) - start )) s"
tar czf $OUT/logs.tgz -C /tmp res bench_r8 2>/dev/null
grep -hE "^[a-z_0-9]+: \{|^\|" /tmp/res/bench_ranks8.txt | cut -c1-220
