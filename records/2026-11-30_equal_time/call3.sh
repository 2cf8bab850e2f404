#!/bin/bash
# call 3: the equal-time short track on both GPUs, two runs at a time on each
cd "$(dirname "$0")/.."
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > $OUT/tokenize.txt 2>&1 || { tail -5 $OUT/tokenize.txt; exit 1; }
stream() {  # GPU, variant, seeds
  LOCAL_RANK=$1 timeout $(( 525 - ($(date +%s) - start) )) python3 records/short_track.py --data /tmp/wiki --out /tmp/study_$2 \
    --equal_time .devdata/costs_ranks8.md --variants $2 --seeds $3 > $OUT/study_$2.txt 2>&1
}
stream 0 baseline 2,3,4 & stream 0 bigram 0,1,2 & stream 1 cross 0,1,2 & stream 1 ngram 0,1,2 &
wait
mkdir -p /tmp/all && cp /tmp/study_*/*_seed*.txt /tmp/all/
tar czf $OUT/study.tgz -C /tmp all
python3 records/study.py /tmp/all
