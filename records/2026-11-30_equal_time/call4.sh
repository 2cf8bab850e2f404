#!/bin/bash
# session 6, call 1: GPU 0 rank-of-8 costs of the variants without one, then short-track runs;
# GPU 1 the equal-time short track, three runs at a time
cd "$(dirname "$0")/.."
start=$(date +%s)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
python3 data/fineweb.py --input .devdata/wiki2015_subset.jsonl.xz --output /tmp/wiki --name wiki --val_tokens 524288 --workers 16 > $OUT/tokenize.txt 2>&1 || { tail -5 $OUT/tokenize.txt; exit 1; }
echo "tokenized in $(( $(date +%s) - start )) s"
left() { echo $(( $1 - ($(date +%s) - start) )); }
( timeout $(left 330) python3 records/bench_mot.py --data /tmp/wiki --ranks 8 --steps 30 --timeout 200 --log_dir /tmp/logs/ranks8 \
    --variants baseline,self_w16,cross_bigram,self_w1_bigram,ngram_bigram > $OUT/ranks8.txt 2>&1
  TORCHINDUCTOR_COMPILE_THREADS=8 LOCAL_RANK=0 timeout $(left 535) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/g0 \
    --equal_time .devdata/costs_ranks8.md --parallel 3 --variants cross,ngram --seeds 2,3 > $OUT/study_gpu0.txt 2>&1 ) &
( TORCHINDUCTOR_COMPILE_THREADS=8 LOCAL_RANK=1 timeout $(left 535) python3 records/short_track.py --data /tmp/wiki --out /tmp/study/g1 \
    --equal_time .devdata/costs_ranks8.md --parallel 3 --variants self_w1,self_w1_l2 --seeds 0,1,2,3 > $OUT/study_gpu1.txt 2>&1 ) &
wait
mkdir -p /tmp/all && cp /tmp/study/g*/*_seed*.txt /tmp/all/ 2>/dev/null
tar czf $OUT/logs.tgz -C /tmp logs all
echo "== ranks8"; cut -c1-200 $OUT/ranks8.txt | tail -15
for g in 0 1; do echo "== study gpu$g"; tail -12 $OUT/study_gpu$g.txt; done
grep -h "final val_loss\|peak memory" /tmp/all/*.txt | head -30
