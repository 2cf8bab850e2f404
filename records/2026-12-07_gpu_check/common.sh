# sourced by the call scripts: the repository root, the clock, the shards of the Wikipedia sample
cd "$(dirname "$0")/../.."
start=$(date +%s)
left() { echo $(( ${LIMIT:-570} - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=16
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[ -e /tmp/wiki/wiki_val_000000.bin ] || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz \
  --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1
echo "tokenized at $(( $(date +%s) - start )) s"
BENCH="python3 records/bench_mot.py --data /tmp/wiki --name wiki --steps 40 --profile_steps 1 --timeout 240
       --extra=--num_iterations=400"
