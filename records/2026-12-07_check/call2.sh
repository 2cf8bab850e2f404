#!/bin/bash
# call 2, the machine of call 1 still warm (inductor's cache holds the check's graphs): each README row's cost
# as one rank of 8, the byte mixers first, at the commit call 1 checked.
#   bash records/2026-12-07_check/call2.sh
source records/2026-12-07_answer/common.sh
timeout $(left) $BENCH --ranks 8 --log_dir /tmp/res/ranks8 --variants baseline,ssm_pool4,self_w1,self_w16,bigram,\
bigram_prefix,prefix,mtp,cross,ngram,bigram_prefix_bytes4,ssm_pool4_bigram_prefix,self_w16_pool4,self_w1_l2,\
ngram_bigram,bigram_mtp,bigram_mtp_prefix > $OUT/ranks8.txt 2>&1
grep -E "^[a-z_0-9]+: \{|^\|" $OUT/ranks8.txt | cut -c1-200
tar czf $OUT/ranks8_logs.tgz -C /tmp/res ranks8
echo "costs ended at $(( $(date +%s) - start )) s"
