#!/bin/bash
# One device call of the byte-structure runs (README.md here): two lanes of short-track runs side by side, each
# a list of (variant, seeds, steps) taken in order. A seed whose log is already under /tmp/res (a warm machine
# keeps it from the call before) is not run again; every run stops by LIMIT, keeping the seeds that finished.
#   LIMIT=590 bash records/2026-12-07_byte_structure/call.sh
source records/2026-12-07_answer/common.sh
folder() { [ "$1" = 400 ] && echo study || echo q1; }  # 400 steps: the answer table's; 390: question 1's
todo() {  # the seeds of the list $2 with no log of variant $1 at $3 steps yet, comma-separated
  local seeds=() seed
  for seed in ${2//,/ }; do
    ls /tmp/res/$(folder $3)_*/$1_seed$seed.txt > /dev/null 2>&1 || seeds+=($seed)
  done
  (IFS=,; echo "${seeds[*]}")
}
lane() {  # lane NAME VARIANT SEEDS STEPS [VARIANT SEEDS STEPS ...]
  local name=$1 seeds; shift
  while [ $# -ge 3 ]; do
    seeds=$(todo $1 $2 $3)
    if [ -n "$seeds" ] && [ $(left) -gt 90 ]; then
      python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/$(folder $3)_$name --variants $1 \
        --seeds $seeds --seeds_per_process 12 --steps $3 --deadline $(( $(left) - 30 )) >> $OUT/lane_$name.txt 2>&1
    fi
    shift 3
  done
}
lane A ssm_pool4 0,1,2,3 400  ssm_pool4_bigram_prefix 0,1,2,3 400  bigram 3,4,5,6,7,8,9,10,11 390 &
lane B bigram_prefix 0,1,2,3 400  bigram_prefix 3,4,5,6,7,8,9,10,11 390  mtp 0,1,2,3 400 &
wait
grep -h " seed .* steps" $OUT/lane_*.txt
tar czf $OUT/runs.tgz --exclude='*.png' --exclude=logs -C /tmp/res $(cd /tmp/res && ls -d study_* q1_* 2>/dev/null)
echo "ended at $(( $(date +%s) - start )) s"
