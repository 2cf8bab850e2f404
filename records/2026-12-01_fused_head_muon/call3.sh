#!/bin/bash
# call 3 (one H200): the MoT variants' step against ac0abcf at one micro-step per step (steps 21-60 of the
# short-track schedule; ac0abcf reads its own byte-shard format, tokenized by its own script), then one rank
# of 8 GPUs (bench_ranks) for the baseline and cross-attention as far as the time allows
cd "$(dirname "$0")/../.."  # the repository root; the corpus and ac0abcf travel in the ignored .devdata/
start=$(date +%s)
left() { echo $(( 575 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 8 > /tmp/res/tokenize.txt 2>&1 &
(cd .devdata/ac0abcf && python3 data/fineweb.py --input ../wiki2015_subset.jsonl.xz --output /tmp/wiki1 --name wiki \
  --val_tokens 524288 --workers 8 > /tmp/res/tokenize_ac0abcf.txt 2>&1) &
wait
echo "tokenized at $(( $(date +%s) - start )) s"
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 60 --profile_steps 1 \
  --variants cross,self_w16_pool4,self_w16 --against .devdata/ac0abcf --against_data /tmp/wiki1 --timeout 200 \
  --log_dir /tmp/bench3 --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res/bench3_mot.txt 2>&1
echo "MoT bench done at $(( $(date +%s) - start )) s"
if [ "$(left)" -gt 120 ]; then
  timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 --timeout 70 \
    --variants baseline,cross --log_dir /tmp/bench3r > /tmp/res/bench3_ranks8.txt 2>&1
  echo "ranks-8 bench done at $(( $(date +%s) - start )) s"
fi
cp /tmp/res/*.txt $OUT/
tar czf $OUT/logs.tgz -C /tmp bench3 bench3r 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res/bench3_*.txt | cut -c1-220
