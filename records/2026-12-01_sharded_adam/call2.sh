#!/bin/bash
# session 7, call 2: two-GPU runs of this commit (RowShardedAdam, the table split over 2 ranks) against 3bb4c6a,
# then short-track runs on both GPUs: the equal-step queue, the baseline at 360 steps, 4th equal-time seeds
cd "$(dirname "$0")/.."
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=8
mkdir -p /tmp/res
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 || { tail -5 /tmp/res/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
left() { echo $(( $1 - ($(date +%s) - start) )); }
two() {  # tree, tag, flags: the 400-step schedule on two GPUs, one micro-step each, stopped at step 100
  local tree=$1 tag=$2; shift 2
  timeout $(left 330) torchrun --standalone --nproc_per_node=2 $tree/train_gpt.py --train_files='/tmp/wiki/wiki_train_*.bin' \
    --val_files='/tmp/wiki/wiki_val_*.bin' --val_tokens=524288 --num_iterations=400 --muon_momentum_warmup_steps=70 \
    --warmup_steps=1 --global_batch_seqs=2 --stop_step=100 --val_loss_every=0 --log_dir=/tmp/two/$tag "$@" > /tmp/res/two_$tag.txt 2>&1
  local rc=$?
  echo "two $tag done at $(( $(date +%s) - start )) s (rc $rc)"
}
two .devdata/old old_baseline
two . new_baseline
two . new_bigram --bigram_hash_rows=251520
two . new_cross --use_mot=1
two . new_self_w1 --use_mot=1 --byte_self_attn=1 --byte_window_tokens=1
for f in /tmp/res/two_*.txt; do echo "$f: $(grep -h 'final val_loss\|warm-up and compile' $f | tr '\n' ' ' | cut -c1-300)"; done
track() {  # out, flags...
  local out=$1; shift
  timeout $(left 545) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/$out "$@" >> /tmp/res/study_$out.txt 2>&1
}
track eq --gpus 0,1 --parallel 2 --variants bigram,ngram,cross,self_w1,ngram_bigram,self_w16,self_w16_pool4,self_w1_l2 --seeds 0,1,2,3 &
( track x360 --gpus 0,1 --steps 360 --variants baseline --seeds 0,1; \
  track et --gpus 0,1 --equal_time .devdata/costs_s6.md --variants self_w16,self_w16_pool4 --seeds 3 ) &
wait
tar czf $OUT/logs.tgz -C /tmp res two study 2>/dev/null
grep -h "seed .* steps)" /tmp/res/study_*.txt
grep -H "^final val_loss" /tmp/study/*/*_seed*.txt | cut -c1-140
