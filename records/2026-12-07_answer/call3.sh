#!/bin/bash
# call 3, the same machine still warm: the costs call 1 did not reach (one rank of 8), then 8 micro-steps per
# step for the byte mixers.
source records/2026-12-07_answer/common.sh
timeout $(( $(left) - 170 )) $BENCH --ranks 8 --log_dir /tmp/res/bench3 \
  --variants ${VARIANTS:-baseline,mtp,bigram_prefix_bytes4,ngram,self_w1_l2,self_w16} \
  > $OUT/bench3_ranks8.txt 2>&1
tail -12 $OUT/bench3_ranks8.txt
timeout $(left) $BENCH --micro_steps 8 --steps 16 --log_dir /tmp/res/bench4 \
  --variants baseline,ssm_pool4,self_w1,self_w16_pool4 > $OUT/bench4_micro8.txt 2>&1
tail -8 $OUT/bench4_micro8.txt
