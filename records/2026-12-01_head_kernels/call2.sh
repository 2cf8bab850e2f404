#!/bin/bash
# call 2 (one H200): the head's CUDA tests again (call 1 found the FP8 tests' weights outside e4m3's range on
# torch 2.11); the MoT variants against 2748b1d (.devdata/head) at one micro-step per step on the short-track
# schedule, steps 21-40
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( 570 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res2
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res2/tokenize.txt 2>&1 &
timeout 120 python3 -m pytest -q -p no:cacheprovider -rs tests/test_step.py > /tmp/res2/cuda_tests.txt 2>&1
tail -3 /tmp/res2/cuda_tests.txt
wait
echo "tokenized and tested at $(( $(date +%s) - start )) s"
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 40 --profile_steps 1 \
  --variants cross,self_w16_pool4,self_w16 --against .devdata/head --timeout 200 --log_dir /tmp/bench2 \
  --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res2/bench2.txt 2>&1
echo "bench done at $(( $(date +%s) - start )) s"
cp /tmp/res2/*.txt $OUT/
tar czf $OUT/bench2_logs.tgz -C /tmp bench2 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res2/bench2.txt | cut -c1-220
