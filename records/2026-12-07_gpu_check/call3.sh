#!/bin/bash
# call 3 (the same machine, still warm): 400-step runs of the short track, two lanes: the scan alone (4 seeds),
# then the bigram; beside them bigram + prefix
source "$(dirname "$0")/common.sh"
RUN="python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/study"
( $RUN --variants ssm_pool4 --seeds 0,1,2,3 --seeds_per_process 4 --deadline $(( $(left) - 15 )) \
    > /tmp/res/lane1a.txt 2>&1
  $RUN --variants bigram --seeds 0,1,2,3,4,5,6,7 --seeds_per_process 8 --deadline $(( $(left) - 15 )) \
    > /tmp/res/lane1b.txt 2>&1 ) &
$RUN --variants bigram_prefix --seeds 0,1,2,3,4,5,6,7,8,9,10,11 --seeds_per_process 12 \
  --deadline $(( $(left) - 15 )) > /tmp/res/lane2.txt 2>&1
wait
echo "lanes done at $(( $(date +%s) - start )) s"
cp /tmp/res/lane*.txt $OUT/
tar czf $OUT/study_logs.tgz -C /tmp/res study
grep -hE "seed [0-9]+ \(|^error|^\|" /tmp/res/lane*.txt | cut -c1-200
