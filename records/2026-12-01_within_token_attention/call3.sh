#!/bin/bash
# call 3 (one H200): 8 micro-steps per step: the baseline and the table variants (recomputed for
# the backward, within-token attention as batched matmuls), in one command
cd "$(dirname "$0")/../.."  # the repository root; the corpus travels in the ignored .devdata/
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
left() { local s=$(( $1 - ($(date +%s) - start) )); echo $(( s > 1 ? s : 1 )); }
ls /tmp/wiki/wiki_val_* > /dev/null 2>&1 || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 || { tail -5 /tmp/res/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
timeout $(left 400) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 24 --timeout 270 \
  --variants baseline,self_w1_l2,self_w1,cross --log_dir /tmp/bench8 > /tmp/res/bench_micro8.txt 2>&1
echo "micro8 done at $(( $(date +%s) - start )) s"
timeout $(left 500) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 30 --timeout 200 \
  --variants baseline,ngram --log_dir /tmp/bench1 > /tmp/res/bench_micro1.txt 2>&1
echo "micro1 done at $(( $(date +%s) - start )) s"
tar czf $OUT/logs.tgz -C /tmp res bench8 bench1 2>/dev/null
grep -hE "^[a-z_0-9]+: \{|^\|" /tmp/res/bench_micro8.txt /tmp/res/bench_micro1.txt | cut -c1-220
