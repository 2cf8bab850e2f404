#!/bin/bash
# call 2 (one GPU): the output targets' cost again after their targets were built by a compiled graph of their
# own (call 1: multi-token prediction cost 1.018x as one rank of 8, its kernels 1.003x: host time)
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( 400 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
timeout $(( $(left) - 90 )) python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --micro_steps 1 --steps 40 \
  --profile_steps 2 --variants baseline,mtp_prefix,mtp --timeout 180 --log_dir /tmp/bench1 \
  --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res/bench_ranks8.txt 2>&1
echo "ranks-8 bench done at $(( $(date +%s) - start )) s"
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 12 --profile_steps 1 \
  --variants baseline,mtp_prefix --timeout 80 --log_dir /tmp/bench8 > /tmp/res/bench_micro8.txt 2>&1
echo "micro-8 bench done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/bench_logs.tgz -C /tmp bench1 bench8 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res/bench_ranks8.txt /tmp/res/bench_micro8.txt | cut -c1-200
