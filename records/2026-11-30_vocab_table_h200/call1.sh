#!/bin/bash
# call 1: cost tables (issue 14 targets, issue 16 equal-time costs)
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print(torch.__version__)"
start=$(date +%s)
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > $OUT/tokenize.txt 2>&1 || { tail -5 $OUT/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
( timeout 500 python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 --timeout 240 --log_dir /tmp/logs/ranks8 \
    --variants baseline,cross,cross_per_token,self_w1,self_w1_l2,self_w1_l2_mlp,self_w16_pool4,self_w16,bigram,ngram > $OUT/ranks8.txt 2>&1 ) &
( export LOCAL_RANK=1
  timeout 330 python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 30 --timeout 240 --log_dir /tmp/logs/micro8 \
    --variants baseline,cross,cross_per_token,self_w1,self_w1_l2 > $OUT/micro8.txt 2>&1
  timeout $(( 520 - ($(date +%s) - start) )) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 30 --timeout 120 --log_dir /tmp/logs/micro1 \
    --variants baseline,cross,cross_per_token,self_w1,self_w1_per_token > $OUT/micro1.txt 2>&1 ) &
wait
tar czf $OUT/bench_logs.tgz -C /tmp logs
for f in ranks8 micro8 micro1; do echo "== $f"; grep -v "^[a-z_0-9]*: {" $OUT/$f.txt | tail -16; grep "error" $OUT/$f.txt | head -3; done
