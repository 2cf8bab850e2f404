#!/bin/bash
# call 2 (one H200): the head backward's two layouts; the short track (400 steps, seed 0) of this tree and of
# ac0abcf at once on the one GPU (losses only: their step times share the GPU); then cross-attention's step
# against ac0abcf at one micro-step per step (steps 21-100 of the short-track schedule)
cd "$(dirname "$0")/../.."  # the repository root; the corpus and ac0abcf travel in the ignored .devdata/
start=$(date +%s)
left() { echo $(( 575 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res /tmp/st
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
timeout 100 python3 records/2026-12-01_fused_head_muon/head_backward_layouts.py > /tmp/res/layouts.txt 2>&1
echo "layouts done at $(( $(date +%s) - start )) s"; tail -5 /tmp/res/layouts.txt
DATA=(--train_files='/tmp/wiki/wiki_train_*.bin' --val_files='/tmp/wiki/wiki_val_*.bin' --val_tokens=262144)
SHORT=(--num_iterations=400 --muon_momentum_warmup_steps=70 --warmup_steps=1 --global_batch_seqs=1 --val_loss_every=50)
timeout $(( $(left) - 150 )) python3 train_gpt.py "${DATA[@]}" "${SHORT[@]}" --log_dir=/tmp/st/new > /tmp/st/new.out 2>&1 &
(cd .devdata/ac0abcf && timeout $(( $(left) - 150 )) python3 train_gpt.py "${DATA[@]}" "${SHORT[@]}" \
  --log_dir=/tmp/st/old > /tmp/st/old.out 2>&1) &
wait
echo "short track done at $(( $(date +%s) - start )) s"
for f in /tmp/st/new.out /tmp/st/old.out; do
  echo "$(basename $f) $(grep -h -o -E '^step:[0-9]+/400 val_loss:[0-9.]+' $f | sed 's/ val_loss//' | tr '\n' ' ')"
  grep -h -E "^final|^error|warm-up and compile" $f; done
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 1 --steps 100 --profile_steps 2 \
  --variants cross --against .devdata/ac0abcf --timeout 140 --log_dir /tmp/bench2 \
  --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" > /tmp/res/bench2.txt 2>&1
echo "bench done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/logs.tgz -C /tmp st bench2 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res/bench2.txt | cut -c1-220
