#!/usr/bin/env bash
# Device call B (two H200s of one host): short-track losses at step 400 of ac0abcf (.old/) and this commit,
# same seed, one per GPU at once; the two-GPU step (one micro-step per GPU per step) of both, one at a time;
# then the hashed features' short-track losses, one per GPU at once. Needs .devdata/wiki2015_subset.jsonl.xz.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/logs
DEADLINE=$((SECONDS + ${BUDGET_S:-575}))
left() { echo $((DEADLINE - SECONDS > 5 ? DEADLINE - SECONDS : 5)); }
trap 'tar -czf "$OUT/logs.tar.gz" -C /tmp logs' EXIT
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
    --val_tokens 524288 --workers 16 > "$OUT/tokenize.txt" 2>&1
DATA=(--train_files='/tmp/wiki/wiki_train_*.bin' --val_files='/tmp/wiki/wiki_val_*.bin' --val_tokens=262144)
SHORT=(--num_iterations=400 --muon_momentum_warmup_steps=70 --warmup_steps=1)
# each process on its own GPU index, so that inductor caches the trunk for both devices
one() { local gpu=$1 dir=$2 script=$3; shift 3
    LOCAL_RANK=$gpu timeout "$(left)" python3 "$script" "${DATA[@]}" "${SHORT[@]}" --global_batch_seqs=1 \
        --val_loss_every=50 --log_dir=/tmp/logs/$dir "$@" > /tmp/logs/$dir.out 2>&1; }
one 0 old_base .old/train_gpt.py & one 1 new_base train_gpt.py & wait
for dir in new2 old2; do script=train_gpt.py; [ $dir = old2 ] && script=.old/train_gpt.py
    timeout "$(left)" torchrun --standalone --nproc_per_node=2 $script "${DATA[@]}" "${SHORT[@]}" \
        --global_batch_seqs=2 --stop_step=150 --val_loss_every=0 --log_dir=/tmp/logs/$dir > /tmp/logs/$dir.out 2>&1
done
one 0 bigram train_gpt.py --bigram_hash_rows=251520 & one 1 ngram train_gpt.py --byte_ngram_rows=251520 & wait
for f in /tmp/logs/*.out; do echo "$(basename $f): $(grep -h -E '^final val_loss|^error' $f | tail -1)"; done
for f in /tmp/logs/*_base.out /tmp/logs/bigram.out /tmp/logs/ngram.out; do
    echo "$(basename $f) $(grep -h -o -E '^step:[0-9]+/400 val_loss:[0-9.]+' $f | sed 's/ val_loss//' | tr '\n' ' ')"; done
