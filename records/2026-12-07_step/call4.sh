#!/bin/bash
# call 4, a fresh machine: this tree's step against 0ffb26d's train_gpt.py (in the ignored .devdata/at0ffb) in
# issue 36's three regimes, one micro-step per step first; the step with the MLP's 256 x 128 tiles (a copy of
# this tree's train_gpt.py with only MLP_TILES changed) against this tree's, as one rank of 8; the MLP's
# products over tilings.
#   LIMIT=585 bash records/2026-12-07_step/call4.sh
source records/2026-12-07_answer/common.sh
TILES=/tmp/tiles256
mkdir -p $TILES
sed 's/^MLP_TILES = ProductTiles()/MLP_TILES = ProductTiles(block_m=256, block_n=128)/' train_gpt.py > $TILES/train_gpt.py
grep -q "^MLP_TILES = ProductTiles(block_m=256, block_n=128)" $TILES/train_gpt.py || {
  echo "error: train_gpt.py has no line 'MLP_TILES = ProductTiles()' to retile; update call4.sh's sed"; exit 1; }
bench() {  # bench NAME OTHER ARGS...: this tree and the other tree, one after the other, into $OUT/NAME.txt
  local name=$1 other=$2; shift 2
  [ $(left) -gt 120 ] || { echo "$name: not reached"; return; }
  timeout $(left) $BENCH --variants baseline --against $other --log_dir /tmp/res/$name "$@" > $OUT/$name.txt 2>&1
  echo "== $name at $(( $(date +%s) - start )) s"; grep -A2 "this tree / " $OUT/$name.txt | tail -1
}
bench micro1 .devdata/at0ffb --micro_steps 1 --steps 150
bench ranks8 .devdata/at0ffb --ranks 8
bench tiles $TILES --timeout 320 --ranks 8
bench micro8 .devdata/at0ffb --micro_steps 8 --steps 16 --timeout 200
if [ $(left) -gt 100 ]; then
  timeout 90 python3 records/2026-12-07_step/mlp_kernels.py > $OUT/mlp_kernels.txt 2>&1
  grep "^|" $OUT/mlp_kernels.txt
fi
tar czf $OUT/logs.tgz -C /tmp/res .
if [ $(left) -gt 30 ]; then  # could the compile caches travel with the repository (64 MiB in all)?
  cache=/tmp/torchinductor_$(whoami)
  if timeout 25 tar czf /tmp/cache.tgz -C /tmp $(basename $cache); then
    echo "inductor's cache: $(du -sm $cache | cut -f1) MiB, $(du -sm /tmp/cache.tgz | cut -f1) MiB compressed"
  else
    echo "inductor's cache: $(du -sm $cache | cut -f1) MiB (compressing it took over 25 s)"
  fi
fi
echo "ended at $(( $(date +%s) - start )) s"
