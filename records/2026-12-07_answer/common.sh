# sourced by the call scripts, run from the repository root: the clock, the machine, the corpus's shards
start=$(date +%s)
left() { echo $(( ${LIMIT:-585} - ($(date +%s) - start) )); }
export PYTHONUNBUFFERED=1
mkdir -p /tmp/res
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> $OUT/machine.txt
[ -e /tmp/wiki/wiki_val_000000.bin ] || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz \
  --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > $OUT/tokenize.txt 2>&1
echo "tokenized at $(( $(date +%s) - start )) s"
memory=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
lanes=$(( memory > 120000 ? 3 : 2 ))  # short-track runs at a time: about 35 GiB each
BENCH="python3 records/bench_mot.py --data /tmp/wiki --name wiki --steps 40 --profile_steps 1 --timeout 240
       --extra=--num_iterations=400"
