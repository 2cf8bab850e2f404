#!/bin/bash
# call 4 (one GPU, a fresh machine): the cost as one rank of 8 of multi-token prediction with its targets built
# by a compiled graph (alone on the GPU); then Q1 of the study continued (prefix seeds 3-7, baseline seeds
# 4-8, two lanes) with the rehearsal's rounding check beside them, one run at a time (MoT + bigram in one
# process: plain, and with the vocabulary table's backward split as 8 and as 2 ranks split it,
# records/2026-12-06_rehearsal/chunked.py)
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( 570 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -e /tmp/wiki/wiki_val_000000.bin ] || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz \
  --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
echo "tokenized at $(( $(date +%s) - start )) s"
timeout 290 python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --micro_steps 1 --steps 60 --profile_steps 2 \
  --variants baseline,mtp,mtp_prefix --timeout 200 --log_dir /tmp/res/bench \
  --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res/bench_ranks8.txt 2>&1
echo "bench done at $(( $(date +%s) - start )) s"
cp /tmp/res/bench_ranks8.txt $OUT/
grep -hE "^\|" /tmp/res/bench_ranks8.txt
( python3 records/short_track.py --data /tmp/wiki --out /tmp/res/q1b --variants prefix --seeds 3,4,5,6,7 \
    --seeds_per_process 5 --deadline $(( $(left) - 15 )) > /tmp/res/q1_prefix_printed.txt 2>&1 ) &
( python3 records/short_track.py --data /tmp/wiki --out /tmp/res/q1c --variants baseline --seeds 4,5,6,7,8 \
    --seeds_per_process 5 --deadline $(( $(left) - 15 )) > /tmp/res/q1_baseline_printed.txt 2>&1 ) &
R="--train_files=/tmp/wiki/wiki_train_*.bin --val_files=/tmp/wiki/wiki_val_*.bin --seq_len=4096 --val_seq_len=4096
   --val_tokens=131072 --num_iterations=30 --val_loss_every=0 --warmup_steps=1 --use_mot=1 --bigram_hash_rows=251520"
timeout $(( $(left) - 20 )) python3 train_gpt.py $R --log_dir=/tmp/res/chunk/one > /tmp/res/chunk_one.txt 2>&1
CHUNKS=8 timeout $(( $(left) - 20 )) python3 records/2026-12-06_rehearsal/chunked.py $R --log_dir=/tmp/res/chunk/c8 \
  > /tmp/res/chunk_c8.txt 2>&1
CHUNKS=2 timeout $(( $(left) - 20 )) python3 records/2026-12-06_rehearsal/chunked.py $R --log_dir=/tmp/res/chunk/c2 \
  > /tmp/res/chunk_c2.txt 2>&1
echo "rounding check done at $(( $(date +%s) - start )) s"
grep -h "final val_loss" /tmp/res/chunk_*.txt
wait
echo "lanes done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/logs.tgz -C /tmp/res q1b q1c chunk bench
grep -hE "seed [0-9]+ \(|^error|^\|" /tmp/res/q1_*_printed.txt | cut -c1-200
