#!/bin/bash
# call 4, the machine of call 3 still warm: question 1 of the answer (bigram + prefix against bigram alone),
# both at 390 steps, their equal time for the baseline's 400 at the costs of calls 2 (1.025 and 1.024), seeds
# 0-5 three to a process, two processes at a time. The device's time ran out after seeds 0-2 of each.
#   bash records/2026-12-07_check/call4.sh
source records/2026-12-07_answer/common.sh
LIMIT=400
timeout $(left) python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/q1 \
  --variants bigram,bigram_prefix --seeds 0,1,2,3,4,5 --seeds_per_process 3 --parallel 2 --steps 390 > $OUT/q1.txt 2>&1
tail -20 $OUT/q1.txt | cut -c1-250
tar czf $OUT/q1_logs.tgz -C /tmp/res q1
echo "ended at $(( $(date +%s) - start )) s"
