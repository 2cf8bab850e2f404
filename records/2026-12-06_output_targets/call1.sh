#!/bin/bash
# call 1 (one GPU): the head kernels' CUDA tests with several targets; which collectives gloo runs on CUDA
# tensors (records/2026-12-06_rehearsal/gloo_probe.py); the output targets' cost as one rank of 8
# (--ranks 8, one micro-step per step, short-track schedule) and at 8 micro-steps per step
cd "$(dirname "$0")/../.."  # the repository root; the corpus travels in the ignored .devdata/
start=$(date +%s)
left() { echo $(( 565 - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 &
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/test_output_targets.py tests/test_step.py \
  > /tmp/res/cuda_tests.txt 2>&1
tail -2 /tmp/res/cuda_tests.txt
timeout 60 python3 -m torch.distributed.run --standalone --nproc_per_node=4 \
  records/2026-12-06_rehearsal/gloo_probe.py > /tmp/res/gloo_probe.txt 2>&1
grep -E "^gloo|^train_gpt|Error" /tmp/res/gloo_probe.txt | head -12
wait
echo "tokenized, tested, probed at $(( $(date +%s) - start )) s"
timeout $(( $(left) - 100 )) python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --micro_steps 1 --steps 60 \
  --profile_steps 2 --variants baseline,prefix,mtp_prefix,mtp,prefix_d21 \
  --timeout 200 --log_dir /tmp/bench1 --extra="--num_iterations=400 --muon_momentum_warmup_steps=70" \
  > /tmp/res/bench_ranks8.txt 2>&1
echo "ranks-8 bench done at $(( $(date +%s) - start )) s"
timeout $(left) python3 records/bench_mot.py --data /tmp/wiki --micro_steps 8 --steps 16 --profile_steps 1 \
  --variants baseline,mtp_prefix --timeout 90 --log_dir /tmp/bench8 > /tmp/res/bench_micro8.txt 2>&1
echo "micro-8 bench done at $(( $(date +%s) - start )) s"
cp /tmp/res/*.txt $OUT/
tar czf $OUT/bench_logs.tgz -C /tmp bench1 bench8 2>/dev/null
grep -hE "^[a-z_0-9@]+: \{|^\|" /tmp/res/bench_ranks8.txt /tmp/res/bench_micro8.txt | cut -c1-200
