#!/bin/bash
# call 3 (one GPU, a fresh machine): the head kernels' CUDA tests (one and several targets); Q1 of the study
# (baseline and prefix at 400 steps, one lane of short_track.py, three seeds per process) while
# records/2026-12-06_rehearsal/features.py looks for where the rehearsal's layouts part with MoT + bigram
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( 565 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -e /tmp/wiki/wiki_val_000000.bin ] || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz \
  --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
echo "tokenized at $(( $(date +%s) - start )) s"
python3 records/short_track.py --data /tmp/wiki --out /tmp/res/q1 --variants baseline,prefix \
  --seeds 0,1,2,3,4,5,6,7,8,9,10,11 --seeds_per_process 3 --deadline $(( $(left) - 15 )) \
  > /tmp/res/q1_printed.txt 2>&1 &
lane=$!
timeout 120 python3 -m pytest -q -p no:cacheprovider -rs tests/test_output_targets.py -k head_kernels \
  > /tmp/res/cuda_tests.txt 2>&1
tail -2 /tmp/res/cuda_tests.txt
python3 records/2026-12-06_rehearsal/features.py --data /tmp/wiki --out /tmp/res/features \
  --deadline $(( $(left) - 20 )) > /tmp/res/features.txt 2>&1
echo "features done at $(( $(date +%s) - start )) s"
wait $lane
echo "lane done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/q1_logs.tgz -C /tmp/res q1
tar czf $OUT/features_logs.tgz --exclude='*.pt' -C /tmp/res features
grep -E "seed [0-9]+ \(|^error" /tmp/res/q1_printed.txt | cut -c1-160
grep -E "^\|" /tmp/res/features.txt | cut -c1-160
