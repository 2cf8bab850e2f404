#!/bin/bash
# call 5 (one GPU, warm from call 4): Q2 of the study (bigram + multi-token prediction, with and without prefix,
# 400 steps each, two lanes); LIMIT: seconds this command may take
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( ${LIMIT:-430} - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -e /tmp/wiki/wiki_val_000000.bin ] || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz \
  --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
echo "tokenized at $(( $(date +%s) - start )) s"
python3 records/short_track.py --data /tmp/wiki --out /tmp/res/q2 --variants bigram_mtp,bigram_mtp_prefix \
  --seeds 0,1,2,3,4,5 --seeds_per_process 6 --parallel 2 --deadline $(( $(left) - 12 )) > /tmp/res/q2_printed.txt 2>&1
echo "lanes done at $(( $(date +%s) - start )) s"
cp /tmp/res/q2_printed.txt $OUT/
tar czf $OUT/q2_logs.tgz -C /tmp/res q2
grep -hE "seed [0-9]+ \(|^error|^\|" /tmp/res/q2_printed.txt | cut -c1-200
