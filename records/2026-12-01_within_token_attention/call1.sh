#!/bin/bash
# call 1 (one H200): within-token attention kernels; one micro-step per step: baseline, the
# table and per-token cross-attention, the hashed features (bigram at both placements, n-grams)
cd "$(dirname "$0")/../.."  # the repository root; the corpus travels in the ignored .devdata/
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=8
mkdir -p /tmp/res
left() { local s=$(( $1 - ($(date +%s) - start) )); echo $(( s > 1 ? s : 1 )); }
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 || { tail -5 /tmp/res/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
timeout 150 python3 records/2026-12-01_within_token_attention/within_token_kernels.py > /tmp/res/kernels.txt 2>&1
cat /tmp/res/kernels.txt | grep -v Warning | tail -14
echo "kernels done at $(( $(date +%s) - start )) s"
timeout $(left 520) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 30 --timeout 200 \
  --variants baseline,cross,cross_per_token,bigram,bigram_input,ngram --log_dir /tmp/bench > /tmp/res/bench_micro1.txt 2>&1
echo "bench done at $(( $(date +%s) - start )) s"
tar czf $OUT/logs.tgz -C /tmp res bench 2>/dev/null
grep -E "^[a-z_]+: \{|^\|" /tmp/res/bench_micro1.txt | cut -c1-220
