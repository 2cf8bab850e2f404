#!/bin/bash
# session 6, call 3: the equal-time short track on both GPUs, three runs at a time on each
cd "$(dirname "$0")/.."
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=8
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > $OUT/tokenize.txt 2>&1 || { tail -5 $OUT/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
left() { echo $(( $1 - ($(date +%s) - start) )); }
track() {  # GPU, variant, seeds
  LOCAL_RANK=$1 timeout $(left 505) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/g$1 \
    --equal_time .devdata/costs_s6.md --variants $2 --seeds $3 >> $OUT/study_gpu$1.txt 2>&1
}
steps380() {  # GPU, seed: the baseline at 380 steps, what 5 % less time buys
  LOCAL_RANK=$1 timeout $(left 505) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/x380 \
    --steps 380 --variants baseline --seeds $2 >> $OUT/study_gpu$1.txt 2>&1
}
( track 0 ngram_bigram 3; steps380 0 0 ) &
( track 0 bigram 3; steps380 0 1 ) &
( track 0 self_w1_l2 3; track 0 self_w16 0 ) &
( track 1 self_w16_pool4 0; steps380 1 2 ) &
( track 1 self_w16_pool4 2; track 1 self_w16_pool4 3 ) &
( track 1 self_w16 2; track 1 self_w16 3 ) &
wait
mkdir -p /tmp/all/x380 && cp /tmp/study/g*/*_seed*.txt /tmp/all/ 2>/dev/null; cp /tmp/study/x380/*_seed*.txt /tmp/all/x380/ 2>/dev/null
tar czf $OUT/logs.tgz -C /tmp all
grep -h "seed .* steps)" $OUT/study_gpu*.txt
grep -H "^final val_loss" /tmp/all/*.txt /tmp/all/x380/*.txt | cut -c1-120
