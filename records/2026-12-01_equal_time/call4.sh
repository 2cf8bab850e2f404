#!/bin/bash
# call 4 (the H200 of call 3, still warm): one 400-step run alone on the GPU, the bigram at the input, seed 0
cd "$(dirname "$0")/../.."  # the repository root; the corpus travels in the ignored .devdata/
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TORCHINDUCTOR_COMPILE_THREADS=8 PYTHONUNBUFFERED=1
mkdir -p /tmp/res /tmp/study
ls /tmp/wiki/wiki_val_* > /dev/null 2>&1 || python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz \
  --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > /tmp/res/tokenize.txt 2>&1 || { tail -5 /tmp/res/tokenize.txt; exit 1; }
echo "data ready at $(( $(date +%s) - start )) s"
left() { local s=$(( $1 - ($(date +%s) - start) )); echo $(( s > 1 ? s : 1 )); }  # timeout 0 would mean none
lane() {  # name, variant, seeds
  timeout $(left ${DEADLINE:-190}) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/$1 \
    --variants $2 --seeds $3 --seeds_per_process 3 >> /tmp/res/lane_$1.txt 2>&1
  echo "lane $1 ($2 $3) ended at $(( $(date +%s) - start )) s, rc $?" | tee -a /tmp/res/lanes.txt
}
lane j bigram_input 0 &
wait
tar czf $OUT/logs.tgz -C /tmp res study/j 2>/dev/null
for f in /tmp/study/j/logs/*.txt /tmp/study/j/*_seed*.txt; do
  [ -f "$f" ] && echo "$f $(grep -m1 -o ' seed=[0-9]*' "$f") $(grep -o 'warm-up and compile: [0-9.]*s' "$f") $(grep '^final val_loss' "$f" | cut -c1-60) $(grep -c '^step:' "$f")"
done
