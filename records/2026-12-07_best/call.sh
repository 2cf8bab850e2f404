#!/bin/bash
# One device call of short-track runs in lanes side by side, each lane an argument: a list of runs
# VARIANT:SEEDS:STEPS:FOLDER[:EXTRA] taken in order, one process per run (one compile for its seeds); EXTRA is
# more train_gpt.py flags for the run, joined by '+' (question 3: --global_batch_seqs=2). A seed whose log
# is already under /tmp/res/FOLDER_* (a warm machine keeps the call before's) is not run again; every run
# stops by LIMIT, keeping the seeds that finished. The logs come back in runs.tgz, by folder and lane.
#   LIMIT=590 bash records/2026-12-07_best/call.sh "bigram:9,10,11:390:q1 mtp:1,2,3:400:study" \
#       "bigram_prefix:0,1,2:249:q3:--global_batch_seqs=2"
source records/2026-12-07_answer/common.sh
todo() {  # the seeds of the list $2 with no log of variant $1 under folder $3 yet, comma-separated
  local seeds=() seed
  for seed in ${2//,/ }; do
    ls /tmp/res/$3_*/$1_seed$seed.txt > /dev/null 2>&1 || seeds+=($seed)
  done
  (IFS=,; echo "${seeds[*]}")
}
lane() {  # lane NAME "RUN RUN ...", each RUN VARIANT:SEEDS:STEPS:FOLDER[:EXTRA]; a second pass retries the
  # seeds of a run that failed (on an 80 GB card a run can start while the other lane's process holds most of
  # the memory, reserved by PyTorch's caching allocator)
  local name=$1 run variant seeds steps folder extra todo_seeds attempt
  for attempt in 1 2; do
    for run in $2; do
      IFS=: read variant seeds steps folder extra <<< "$run"
      todo_seeds=$(todo $variant $seeds $folder)
      if [ -n "$todo_seeds" ] && [ $(left) -gt 90 ]; then
        python3 records/short_track.py --data /tmp/wiki --name wiki --out /tmp/res/${folder}_$name --variants $variant \
          --seeds $todo_seeds --seeds_per_process 12 --steps $steps --deadline $(( $(left) - 30 )) \
          ${extra:+"--extra=${extra//+/ }"} >> $OUT/lane_$name.txt 2>&1
      fi
    done
  done
}
names=(A B C)
for index in $(seq 0 $(( $# - 1 ))); do
  lane ${names[$index]} "${@:$(( index + 1 )):1}" &
done
wait
grep -h " seed .* steps" $OUT/lane_*.txt
tar czf $OUT/runs.tgz --exclude='*.png' --exclude=logs -C /tmp/res $(cd /tmp/res && ls -d *_[ABC] 2>/dev/null)
echo "ended at $(( $(date +%s) - start )) s"
