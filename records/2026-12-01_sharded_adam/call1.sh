#!/bin/bash
# session 7, call 1: this commit (RowShardedAdam) against 3bb4c6a (.devdata/old): one rank of 8 GPUs on each
# GPU (each variant new and old on the same GPU), then two-GPU runs (one micro-step per GPU per step)
cd "$(dirname "$0")/.."
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=8
mkdir -p /tmp/res
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 || { tail -5 /tmp/res/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
left() { echo $(( $1 - ($(date +%s) - start) )); }
bench() {  # GPU, tree, tag, variant
  LOCAL_RANK=$1 timeout $(left 390) python3 $2/records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 \
    --variants $4 --log_dir /tmp/bench/$3_$4 > /tmp/res/bench_$3_$4.txt 2>&1
  echo "bench $3 $4 on GPU $1 done at $(( $(date +%s) - start )) s"
}
( bench 0 . new baseline; bench 0 .devdata/old old baseline; bench 0 .devdata/old old bigram; bench 0 . new bigram ) &
( bench 1 . new cross; bench 1 .devdata/old old cross; bench 1 .devdata/old old ngram; bench 1 . new ngram ) &
wait
two() {  # tree, tag, flags: the 400-step schedule on two GPUs, one micro-step each, stopped at step 100
  local tree=$1 tag=$2; shift 2
  timeout $(left 560) torchrun --standalone --nproc_per_node=2 $tree/train_gpt.py --train_files='/tmp/wiki/wiki_train_*.bin' \
    --val_files='/tmp/wiki/wiki_val_*.bin' --val_tokens=262144 --num_iterations=400 --muon_momentum_warmup_steps=70 \
    --warmup_steps=1 --global_batch_seqs=2 --stop_step=100 --val_loss_every=0 --log_dir=/tmp/two/$tag "$@" > /tmp/res/two_$tag.txt 2>&1
  local rc=$?
  echo "two $tag done at $(( $(date +%s) - start )) s (rc $rc)"
}
two .devdata/old old_baseline
two . new_baseline
two . new_bigram --bigram_hash_rows=251520
two .devdata/old old_bigram --bigram_hash_rows=251520
two . new_cross --use_mot=1
two . new_self_w1 --use_mot=1 --byte_self_attn=1 --byte_window_tokens=1
tar czf $OUT/logs.tgz -C /tmp res bench two 2>/dev/null
grep -h "^| [a-z]" /tmp/res/bench_*.txt | grep -v "| variant" | sed 's/^/bench /' ; ls /tmp/res/bench_*.txt
for f in /tmp/res/bench_*.txt; do echo "$f: $(grep -E '^[a-z_]+: \{' $f | cut -c1-200)"; done
for f in /tmp/res/two_*.txt; do echo "$f: $(grep -h 'final val_loss\|compile' $f | tr '\n' ' ' | cut -c1-260)"; tail -2 $f | cut -c1-200; done
