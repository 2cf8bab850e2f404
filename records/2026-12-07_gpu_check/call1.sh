#!/bin/bash
# call 1 (one GPU, a fresh machine): the GPU check of this commit, then the costs as one rank of 8 of the new
# variants and the answer's rows, as far as the time allows (each variant's line is printed as it ends)
source "$(dirname "$0")/common.sh"
lanes=2  # families trained at a time: 3 where the GPU holds three short-track runs of 31 GB
[ "$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)" -gt 120000 ] && lanes=3
timeout $(( $(left) - 20 )) python3 records/gpu_check.py --data /tmp/wiki --name wiki --logs /tmp/res/gpu_check \
  --lanes $lanes > /tmp/res/gpu_check.txt 2>&1
echo "GPU check done at $(( $(date +%s) - start )) s"
cp /tmp/res/gpu_check.txt records/gpu_checks.md $OUT/
cat /tmp/res/gpu_check.txt
timeout $(( $(left) - 12 )) $BENCH --ranks 8 --log_dir /tmp/res/bench1 \
  --variants baseline,ssm_pool4,bigram_prefix,bigram_prefix_bytes4,bigram,prefix,cross,self_w1 \
  > /tmp/res/bench1_ranks8.txt 2>&1
cp /tmp/res/bench1_ranks8.txt $OUT/
grep -E "^\w+: |^\||^error" /tmp/res/bench1_ranks8.txt | cut -c1-250
tar czf $OUT/gpu_check_logs.tgz -C /tmp/res gpu_check
