#!/bin/bash
# call 3 (one H200): the head's CUDA tests; the short track (400 steps, seed 0) of this tree; then 8
# micro-steps per step on the record schedule (steps 13-24), from the short track's warm compile cache
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( 420 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res3 /tmp/st
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res3/tokenize.txt 2>&1 &
timeout 100 python3 -m pytest -q -p no:cacheprovider -rs tests/test_step.py > /tmp/res3/cuda_tests.txt 2>&1
tail -1 /tmp/res3/cuda_tests.txt
wait
echo "tokenized and tested at $(( $(date +%s) - start )) s"
DATA=(--train_files='/tmp/wiki/wiki_train_*.bin' --val_files='/tmp/wiki/wiki_val_*.bin' --val_tokens=262144)
SHORT=(--num_iterations=400 --muon_momentum_warmup_steps=70 --warmup_steps=1 --global_batch_seqs=1 --val_loss_every=50)
timeout $(( $(left) - 60 )) python3 train_gpt.py "${DATA[@]}" "${SHORT[@]}" --log_dir=/tmp/st/new > /tmp/res3/short_track.txt 2>&1
echo "short track done at $(( $(date +%s) - start )) s"
echo "$(grep -h -o -E '^step:[0-9]+/400 val_loss:[0-9.]+' /tmp/res3/short_track.txt | sed 's/ val_loss//' | tr '\n' ' ')"
grep -h -E "^final|^error|warm-up and compile" /tmp/res3/short_track.txt
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 24 --profile_steps 1 \
  --variants baseline --timeout $(( $(left) - 5 )) --log_dir /tmp/bench3 > /tmp/res3/bench3_micro8.txt 2>&1
echo "8 micro-steps done at $(( $(date +%s) - start )) s"
cp /tmp/res3/*.txt $OUT/
tar czf $OUT/logs3.tgz -C /tmp st bench3 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res3/bench3_micro8.txt | cut -c1-220
