#!/bin/bash
# call 2, a fresh machine: the GPU check again at the commit $COMMIT names (call 1's check ran past the
# command's limit, and its rehearsal's ranks failed without saying why), then the costs as one rank of 8 in
# the time left, the byte mixers first.
#   COMMIT=<sha> bash records/2026-12-07_answer/call2.sh
source records/2026-12-07_answer/common.sh
timeout $(left) python3 records/gpu_check.py --data /tmp/wiki --name wiki --lanes $lanes --commit "$COMMIT" \
  --logs /tmp/res/gpu_check > $OUT/gpu_check.txt 2>&1
cut -c1-300 $OUT/gpu_check.txt
cp records/gpu_checks.md $OUT/
tar czf $OUT/gpu_check_logs.tgz -C /tmp/res gpu_check
echo "check ended at $(( $(date +%s) - start )) s"
timeout $(left) $BENCH --ranks 8 --log_dir /tmp/res/bench2 \
  --variants baseline,ssm_pool4,self_w1,self_w16_pool4,bigram,bigram_prefix,cross,prefix > $OUT/bench2_ranks8.txt 2>&1
tail -12 $OUT/bench2_ranks8.txt
