#!/bin/bash
# call 2: GPU 0 benchmarks (rank-of-8 costs of the hashed features, 8 micro-steps of the within-token table
# variants); GPU 1 the equal-time short track, three runs at a time
cd "$(dirname "$0")/.."
start=$(date +%s)
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > $OUT/tokenize.txt 2>&1 || { tail -5 $OUT/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
( timeout 290 python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 --timeout 200 --log_dir /tmp/logs/ranks8 \
    --variants baseline,bigram,ngram,self_w16 > $OUT/ranks8.txt 2>&1
  timeout $(( 545 - ($(date +%s) - start) )) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 30 --timeout 200 --log_dir /tmp/logs/micro8 \
    --variants baseline,self_w1,self_w1_l2 > $OUT/micro8.txt 2>&1 ) &
( export LOCAL_RANK=1
  timeout $(( 545 - ($(date +%s) - start) )) python3 records/short_track.py --data /tmp/wiki --out /tmp/study --equal_time .devdata/costs_ranks8_call1.md \
    --parallel 3 --variants baseline,self_w16_pool4,cross --seeds 0,1,2 > $OUT/study_gpu1.txt 2>&1 ) &
wait
tar czf $OUT/logs.tgz -C /tmp logs study
for f in ranks8 micro8; do echo "== $f"; cat $OUT/$f.txt | cut -c1-200; done
echo "== study"; cat $OUT/study_gpu1.txt | tail -20; ls /tmp/study
