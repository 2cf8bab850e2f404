#!/bin/bash
# call 2 (the same machine, still warm): the remaining rows' costs as one rank of 8, then the scan's cost at 8
# micro-steps per step beside within-token attention and the window of 16 tokens at byte_pool 4
source "$(dirname "$0")/common.sh"
timeout $(( $(left) - 150 )) $BENCH --ranks 8 --log_dir /tmp/res/bench2 \
  --variants baseline,self_w16_pool4,mtp,ngram,self_w16,ngram_bigram,self_w1_l2,bigram_mtp_prefix,bigram_mtp,ssm,ssm_pool4_bigram_prefix \
  > /tmp/res/bench2_ranks8.txt 2>&1
cp /tmp/res/bench2_ranks8.txt $OUT/
grep -E "^\w+: |^\||^error" /tmp/res/bench2_ranks8.txt | cut -c1-250
timeout $(( $(left) - 10 )) $BENCH --micro_steps 8 --steps 16 --log_dir /tmp/res/bench3 \
  --variants baseline,ssm_pool4,self_w1,self_w16_pool4 > /tmp/res/bench3_micro8.txt 2>&1
cp /tmp/res/bench3_micro8.txt $OUT/
grep -E "^\w+: |^\||^error" /tmp/res/bench3_micro8.txt | cut -c1-250
