#!/bin/bash
# The same command for each of two calls on one machine: question 2's remaining screens and the baseline's
# seeds 7-11, in 3 lanes on a 141 GB GPU, 2 on an 80 GB one (../2026-12-07_best/call.sh; a seed with a log on
# a warm machine is not run again, so a later call picks up where the one before stopped). It runs main's
# GPU-checked trainer as it stands.
#   LIMIT=575 bash records/2026-12-08_screens/call.sh
memory=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
bytes1="bigram_prefix_bytes1:0,1,2,3:389:q2"
bytes2="bigram_prefix_bytes2:0,1,2,3:385:q2"
bytes4="bigram_prefix_bytes4:0,1,2,3:386:q2"
depth21="bigram_prefix_d21:0,1,2,3:390:q2"
baseline_a="baseline:7,8,9:400:study"
baseline_b="baseline:10,11:400:study"
if [ "$memory" -gt 120000 ]; then
  bash records/2026-12-07_best/call.sh "$bytes1 $bytes4" "$depth21 $baseline_a" "$bytes2 $baseline_b"
else
  bash records/2026-12-07_best/call.sh "$bytes1 $bytes4 $baseline_a" "$depth21 $bytes2 $baseline_b"
fi
