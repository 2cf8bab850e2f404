#!/bin/bash
# call 1, a fresh machine: the GPU check of the commit $COMMIT names (the machine's copy of the repository
# is not at it), then the costs as one rank of 8 in the time left.
#   COMMIT=<sha> bash records/2026-12-07_answer/call1.sh
source records/2026-12-07_answer/common.sh
timeout $(left) python3 records/gpu_check.py --data /tmp/wiki --name wiki --lanes $lanes --commit "$COMMIT" \
  --logs /tmp/res/gpu_check > $OUT/gpu_check.txt 2>&1
cut -c1-300 $OUT/gpu_check.txt
cp records/gpu_checks.md $OUT/
tar czf $OUT/gpu_check_logs.tgz -C /tmp/res gpu_check
echo "check ended at $(( $(date +%s) - start )) s"
timeout $(left) $BENCH --ranks 8 --log_dir /tmp/res/bench1 \
  --variants baseline,bigram,bigram_prefix,ssm_pool4,ssm_pool4_bigram_prefix,cross,self_w1,self_w16_pool4,prefix > $OUT/bench1_ranks8.txt 2>&1
tail -15 $OUT/bench1_ranks8.txt
cp $OUT/bench1_ranks8.txt /tmp/res/costs.md  # call 3 reads the costs from here
