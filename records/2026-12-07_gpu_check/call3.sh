#!/bin/bash
# call 3 (the same machine, still warm): the remaining rows' costs as one rank of 8
source "$(dirname "$0")/common.sh"
timeout $(( $(left) - 10 )) $BENCH --ranks 8 --log_dir /tmp/res/bench3 \
  --variants baseline,self_w16_pool4,mtp,ngram,self_w16,ngram_bigram,self_w1_l2,bigram_mtp_prefix,bigram_mtp,ssm_pool4_bigram_prefix \
  > /tmp/res/bench3_ranks8.txt 2>&1
cp /tmp/res/bench3_ranks8.txt $OUT/
grep -E "^\w+: |^\||^error" /tmp/res/bench3_ranks8.txt | cut -c1-250
