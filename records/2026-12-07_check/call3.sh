#!/bin/bash
# call 3, the machine of call 2 still warm: the two rows call 2 left (with a baseline of their own), then the
# byte mixers at 8 micro-steps per step. Run as one command line on the device; this file is that line.
#   bash records/2026-12-07_check/call3.sh
source records/2026-12-07_answer/common.sh
LIMIT=540
timeout $(left) $BENCH --ranks 8 --log_dir /tmp/res/ranks8b --variants baseline,bigram_mtp,bigram_mtp_prefix \
  > $OUT/ranks8b.txt 2>&1
grep -E "^[a-z_0-9]+: \{" $OUT/ranks8b.txt | cut -c1-200
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --name wiki --micro_steps 8 --steps 16 --profile_steps 1 \
  --timeout 200 --extra=--num_iterations=400 --log_dir /tmp/res/micro8 --variants baseline,ssm_pool4,self_w1,self_w16 \
  > $OUT/micro8.txt 2>&1
grep -E "^[a-z_0-9]+: \{|^\|" $OUT/micro8.txt | cut -c1-200
echo "ended at $(( $(date +%s) - start )) s"
