#!/bin/bash
# call 2, the same machine still warm: beside each other, the scan's worth at 400 steps (alone and added to
# bigram + prefix, seeds 0-3) and Q1's arms at equal time (the bigram alone and bigram + prefix, their steps
# from call 1's costs) for as many seeds as the time allows.
source records/2026-12-07_answer/common.sh
costs=/tmp/res/costs.md
[ -e $costs ] || costs=records/2026-12-07_answer/bench1_ranks8.txt  # the machine went cold after call 1
deadline=$(( $(left) - 30 ))
python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/scan --variants ssm_pool4,ssm_pool4_bigram_prefix \
  --seeds 0,1,2,3 --seeds_per_process 4 --parallel 1 --deadline $deadline > $OUT/scan_study.txt 2>&1 &
python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/q1 --variants bigram,bigram_prefix \
  --seeds 0,1,2,3,4,5,6,7,8,9,10,11 --seeds_per_process 6 --parallel $(( lanes - 1 )) --equal_time $costs \
  --deadline $deadline > $OUT/q1_study.txt 2>&1
wait
tail -8 $OUT/scan_study.txt $OUT/q1_study.txt
tar czf $OUT/study_logs.tgz -C /tmp/res scan q1
