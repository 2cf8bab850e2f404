#!/bin/bash
# One device call: the cost per step as one rank of 8 of question 2's screens and of bigram + prefix, the
# reference they are screened against, beside the baseline, all at this commit (issue 34 asks for costs timed
# at the commit of the runs). The table, for short_track.py --equal_time and the screens' step counts
# (round(400 / cost)), is $OUT/costs_ranks8.txt; the logs come back in costs.tgz.
#   LIMIT=585 bash records/2026-12-07_best/costs.sh
source records/2026-12-07_answer/common.sh
variants=baseline,bigram_prefix,bigram_prefix_frequent,bigram_prefix_kept,bigram_prefix_d21,bigram_prefix_bytes1
variants+=,bigram_prefix_bytes2,bigram_prefix_bytes4
timeout $(left) $BENCH --ranks 8 --timeout 320 --variants $variants --log_dir /tmp/res/costs > $OUT/costs_ranks8.txt 2>&1
grep "^|" $OUT/costs_ranks8.txt
tar czf $OUT/costs.tgz -C /tmp/res costs
echo "ended at $(( $(date +%s) - start )) s"
