#!/bin/bash
# the rehearsal (one GPU): the shards, the gloo probe, then rehearse.py
cd "$(dirname "$0")/../.."
start=$(date +%s)
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=16
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p /tmp/reh
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki \
  --val_tokens 524288 --workers 16 > /tmp/reh/tokenize.txt 2>&1
timeout 60 python3 -m torch.distributed.run --standalone --nproc_per_node=4 \
  records/2026-12-06_rehearsal/gloo_probe.py > /tmp/reh/gloo_probe.txt 2>&1
grep -E "^gloo|^train_gpt|Error" /tmp/reh/gloo_probe.txt | head -12
echo "tokenized and probed at $(( $(date +%s) - start )) s"
python3 records/2026-12-06_rehearsal/rehearse.py --data /tmp/wiki --out /tmp/reh/runs \
  --deadline $(( 575 - ($(date +%s) - start) )) 2>&1 | tee /tmp/reh/rehearse.txt
cp /tmp/reh/*.txt $OUT/
tar czf $OUT/runs.tgz --exclude='*.pt' -C /tmp/reh runs
