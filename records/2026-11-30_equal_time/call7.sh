#!/bin/bash
# session 7, call 3: short-track runs on both GPUs, three at a time on each: the baseline at 360 steps (the
# exchange rate), the fourth equal-time seeds of window 16, and equal-step runs of the bigram, n-grams + bigram
cd "$(dirname "$0")/.."
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=8
mkdir -p /tmp/res
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 || { tail -5 /tmp/res/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
left() { local s=$(( $1 - ($(date +%s) - start) )); echo $(( s > 1 ? s : 1 )); }  # timeout 0 would mean none
track() {  # out, flags...
  local out=$1; shift
  timeout $(left 515) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/$out --gpus 0,1 "$@" >> /tmp/res/study_$out.txt 2>&1
}
track x360 --steps 360 --variants baseline --seeds 0,1,2 &
( track et --equal_time .devdata/costs_s6.md --variants self_w16,self_w16_pool4 --seeds 3; \
  track eq2 --variants ngram --seeds 0,1 ) &
track eq --variants bigram,ngram_bigram --seeds 0,1 &
wait
tar czf $OUT/logs.tgz -C /tmp res study 2>/dev/null
grep -h "seed .* steps)" /tmp/res/study_*.txt
grep -H "^final val_loss" /tmp/study/*/*_seed*.txt | cut -c1-140
