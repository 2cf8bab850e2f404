#!/bin/bash
# call 2 (the same machine, still warm): the scan's cost at 8 micro-steps per step beside within-token attention
# and the window of 16 tokens at byte_pool 4; then 400-step runs of the short track in two lanes: the scan
# alone and on bigram + prefix (4 seeds each), then bigram + prefix alone
source "$(dirname "$0")/common.sh"
timeout 170 $BENCH --micro_steps 8 --steps 16 --log_dir /tmp/res/bench2 \
  --variants baseline,ssm_pool4,self_w1,self_w16_pool4 > /tmp/res/bench2_micro8.txt 2>&1
cp /tmp/res/bench2_micro8.txt $OUT/
grep -E "^\w+: |^\||^error" /tmp/res/bench2_micro8.txt | cut -c1-250
RUN="python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/study"
( $RUN --variants ssm_pool4 --seeds 0,1,2,3 --seeds_per_process 4 --deadline $(( $(left) - 15 )) \
    > /tmp/res/lane1a.txt 2>&1
  $RUN --variants bigram_prefix --seeds 0,1,2,3 --seeds_per_process 4 --deadline $(( $(left) - 15 )) \
    > /tmp/res/lane1b.txt 2>&1 ) &
( $RUN --variants ssm_pool4_bigram_prefix --seeds 0,1,2,3 --seeds_per_process 4 --deadline $(( $(left) - 15 )) \
    > /tmp/res/lane2a.txt 2>&1
  $RUN --variants bigram_prefix --seeds 4,5,6,7 --seeds_per_process 4 --deadline $(( $(left) - 15 )) \
    > /tmp/res/lane2b.txt 2>&1 ) &
wait
echo "lanes done at $(( $(date +%s) - start )) s"
cp /tmp/res/lane*.txt $OUT/
tar czf $OUT/study_logs.tgz -C /tmp/res study
grep -hE "seed [0-9]+ \(|^error|^\|" /tmp/res/lane*.txt | cut -c1-200
